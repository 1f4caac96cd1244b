/* k_list.h — intrusive circular doubly-linked list (no allocation). */
#ifndef K_LIST_H
#define K_LIST_H

#include "k_common.h"

struct k_list {
	struct k_list *prev, *next;
};

static inline void k_list_init(struct k_list *l)
{
	l->prev = l->next = l;
}
static inline int k_list_empty(const struct k_list *l)
{
	return l->next == l;
}
/* A node that was removed (or never added) after k_list_init. */
static inline int k_list_linked(const struct k_list *n)
{
	return n->next != n;
}
static inline void k_list_add_tail(struct k_list *head, struct k_list *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}
static inline void k_list_add_head(struct k_list *head, struct k_list *n)
{
	n->next = head->next;
	n->prev = head;
	head->next->prev = n;
	head->next = n;
}
static inline void k_list_del(struct k_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	n->prev = n->next = n;
}

#define k_list_entry(ptr, type, member)	 K_CONTAINER_OF(ptr, type, member)
#define k_list_first(head, type, member) k_list_entry((head)->next, type, member)

#endif
