/* k_common.h — types and error codes shared by every layer.
 *
 * Error convention: functions return 0 (or a non-negative count) on success
 * and one of the small negative K_E* codes below on failure. Never errno
 * values: callers switch on these. */
#ifndef K_COMMON_H
#define K_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
	K_OK = 0,
	K_ENOMEM = -1,	  /* allocation failed */
	K_EINVAL = -2,	  /* malformed input; a message says where */
	K_EAGAIN = -3,	  /* need more input; call again with more bytes */
	K_ELIMIT = -4,	  /* a configured limit was exceeded */
	K_ENOTSUP = -5,	  /* well-formed but not supported */
	K_ENOENT = -6,	  /* named thing does not exist */
	K_EIO = -7,	  /* OS-level I/O failure */
	K_ETIMEDOUT = -8, /* deadline passed */
	K_ECLOSED = -9,	  /* peer closed / object shut down */
};

/* Name of an error code, for logs ("K_EINVAL"). Never NULL. */
const char *k_strerror(int err);

/* A borrowed byte span: never owns, never NUL-terminated unless stated. */
struct k_str {
	const char *p;
	size_t len;
};

#define K_STR_LIT(s)			  ((struct k_str){(s), sizeof(s) - 1})
#define K_ARRAY_LEN(a)			  (sizeof(a) / sizeof((a)[0]))
#define K_MIN(a, b)			  ((a) < (b) ? (a) : (b))
#define K_MAX(a, b)			  ((a) > (b) ? (a) : (b))
#define K_UNUSED(x)			  ((void)(x))
#define K_LIKELY(x)			  __builtin_expect(!!(x), 1)
#define K_UNLIKELY(x)			  __builtin_expect(!!(x), 0)
#define K_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline int k_str_eq(struct k_str a, struct k_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* ASCII case-insensitive equality (header names, tokens). */
int k_str_ieq(struct k_str a, struct k_str b);
static inline int k_str_ieq_lit(struct k_str a, const char *lit)
{
	struct k_str b = {lit, strlen(lit)};
	return k_str_ieq(a, b);
}

/* Value of a hex digit, or -1. */
int k_hex_val(char ch);

/* Percent-decode s (a URI query component) into out as a NUL-terminated
 * string. K_PCT_PLUS_SPACE turns '+' into ' ' (HTML forms); without it '+'
 * stays '+' (regexes in admin filters need it). "%00" is refused: decoded
 * text ends up in C strings and headers. Returns the decoded length, or
 * K_EINVAL for a bad escape, a NUL, or no room (out needs length + 1). */
enum { K_PCT_PLUS_SPACE = 1 };
int k_pct_decode(struct k_str s, char *out, size_t cap, unsigned flags);

#endif
