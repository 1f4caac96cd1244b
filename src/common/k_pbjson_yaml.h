/* k_pbjson_yaml.h — reading YAML safely with libfyaml 0.7: the input
 * checks and scalar preparation that keep libfyaml's known crashes, hangs
 * and leaks (found by fuzzing; see k_pbjson_yaml.c) away from the decoder.
 * Internal to k_pbjson.c. */
#ifndef K_PBJSON_YAML_H
#define K_PBJSON_YAML_H

#include <libfyaml.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "k_common.h"

/* Scalar text we produced, attached to a node as its meta data. */
struct qtext {
	size_t len;
	char s[];
};

size_t k_pbjson_utf8_invalid_at(const unsigned char *s, size_t len);
size_t k_pbjson_nonprintable_at(const unsigned char *s, size_t len, uint32_t *cp);
int k_pbjson_line_at(const char *text, size_t off);
bool k_pbjson_utf8_valid(const unsigned char *s, size_t len);
void k_pbjson_qtext_free(struct fy_node *fyn, void *meta, void *user);
int k_pbjson_prepare_scalars(struct fy_node *n, const char *text, size_t tlen);
size_t k_pbjson_tab_indent_at(const char *s, size_t len);
char *k_pbjson_lf_only(const char *text, size_t *len);

#endif
