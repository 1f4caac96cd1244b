/* k_pbjson_yaml.c — input checks and scalar preparation around libfyaml
 * 0.7.12, whose parser crashes, hangs or leaks on some inputs (found by
 * fuzzing): invalid UTF-8 and forbidden control characters are refused
 * before parsing, tabs in block indentation are refused with a clear
 * message, line endings are normalised, and scalar text is produced by our
 * code where libfyaml's own accessors misbehave. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "k_pbjson.h"
#include "k_pbjson_yaml.h"

/* Offset of the first byte that does not start a valid UTF-8 sequence, or
 * len if there is none. */
size_t k_pbjson_utf8_invalid_at(const unsigned char *s, size_t len)
{
	size_t i = 0, n;

	while (i < len && (n = k_pbjson_utf8_seq(s + i, len - i)))
		i += n;
	return i;
}

/* Offset of the first character YAML does not allow in a stream (C0 and
 * C1 controls other than tab, line breaks and NEL; DEL; U+FFFE, U+FFFF),
 * or len; *cp is that character. s must be valid UTF-8. (libfyaml 0.7.12
 * crashes on some NULs.) */
size_t k_pbjson_nonprintable_at(const unsigned char *s, size_t len, uint32_t *cp)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = s[i];
		*cp = ch;
		if ((ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 0x7f)
			return i;
		*cp = i + 1 < len ? s[i + 1] : 0;
		if (ch == 0xc2 && *cp >= 0x80 && *cp <= 0x9f && *cp != 0x85)
			return i;
		*cp = i + 2 < len ? 0xffc0u | (s[i + 2] & 0x3f) : 0;
		if (ch == 0xef && s[i + 1] == 0xbf && *cp >= 0xfffe)
			return i;
	}
	return len;
}

int k_pbjson_line_at(const char *text, size_t off)
{
	int line = 1;

	for (size_t i = 0; i < off; i++)
		line += text[i] == '\n';
	return line;
}

bool k_pbjson_utf8_valid(const unsigned char *s, size_t len)
{
	return k_pbjson_utf8_invalid_at(s, len) == len;
}

void k_pbjson_qtext_free(struct fy_node *fyn, void *meta, void *user)
{
	free(meta);
}

/* A single-quoted scalar, unescaped from the source between the quotes:
 * '' is ', and a line break with the blanks around it folds to a space
 * (n breaks to n-1 newlines). libfyaml 0.7.12 gets runs of '' wrong. */
static int unquote_single(struct fy_node *n, const char *text, size_t tlen)
{
	struct fy_token *t = fy_node_get_scalar_token(n);
	const struct fy_mark *a = t ? fy_token_start_mark(t) : NULL;
	const struct fy_mark *b = t ? fy_token_end_mark(t) : NULL;
	struct qtext *q;
	const char *r;
	size_t len, o = 0;

	if (!a || !b || a->input_pos > b->input_pos || b->input_pos > tlen)
		return K_EINVAL;
	r = text + a->input_pos;
	len = b->input_pos - a->input_pos;
	q = malloc(sizeof(*q) + len + 1);
	if (!q)
		return K_ENOMEM;
	for (size_t i = 0; i < len;) {
		if (r[i] == '\'' && i + 1 < len && r[i + 1] == '\'') {
			q->s[o++] = '\'';
			i += 2;
		} else if (r[i] == '\n') {
			size_t breaks = 0;
			while (o && (q->s[o - 1] == ' ' || q->s[o - 1] == '\t'))
				o--;
			while (i < len && r[i] == '\n') {
				i++;
				breaks++;
				while (i < len && (r[i] == ' ' || r[i] == '\t'))
					i++;
			}
			if (breaks == 1)
				q->s[o++] = ' ';
			while (--breaks)
				q->s[o++] = '\n';
		} else {
			q->s[o++] = r[i++];
		}
	}
	q->s[o] = '\0';
	q->len = o;
	if (fy_node_set_meta(n, q)) {
		free(q);
		return K_ENOMEM;
	}
	return 0;
}

/* Any other scalar, through libfyaml's chunk iterator: fy_node_get_scalar()
 * sizes its buffer from a length hint that 0.7.12 sometimes gets wrong,
 * and then fails and leaks. */
static int iterate_scalar(struct fy_node *n)
{
	struct fy_token_iter *it = fy_token_iter_create(fy_node_get_scalar_token(n));
	const struct fy_iter_chunk *ic = NULL;
	struct qtext *q = NULL, *nq;
	size_t cap = 0, len = 0;
	int err = 0;

	if (!it)
		return K_ENOMEM;
	while ((ic = fy_token_iter_chunk_next(it, ic, &err))) {
		if (len + ic->len >= cap) {
			cap = K_MAX(2 * cap, len + ic->len + 16);
			nq = realloc(q, sizeof(*q) + cap);
			if (!nq) {
				err = K_ENOMEM;
				break;
			}
			q = nq;
		}
		memcpy(q->s + len, ic->str, ic->len);
		len += ic->len;
	}
	fy_token_iter_destroy(it);
	if (!err && !q)
		q = malloc(sizeof(*q) + 1);
	if (err || !q || fy_node_set_meta(n, q)) {
		free(q);
		return err == K_ENOMEM || !q ? K_ENOMEM : K_EINVAL;
	}
	q->s[len] = '\0';
	q->len = len;
	return 0;
}

/* Give every scalar its text (see scalar_text) before decoding starts. */
int k_pbjson_prepare_scalars(struct fy_node *n, const char *text, size_t tlen)
{
	struct fy_node_pair *p;
	struct fy_node *item;
	void *it = NULL;
	int rc = 0;

	if (!n)
		return 0;
	switch (fy_node_get_type(n)) {
	case FYNT_MAPPING:
		while (!rc && (p = fy_node_mapping_iterate(n, &it))) {
			rc = k_pbjson_prepare_scalars(fy_node_pair_key(p), text, tlen);
			if (!rc)
				rc = k_pbjson_prepare_scalars(fy_node_pair_value(p), text, tlen);
		}
		return rc;
	case FYNT_SEQUENCE:
		while (!rc && (item = fy_node_sequence_iterate(n, &it)))
			rc = k_pbjson_prepare_scalars(item, text, tlen);
		return rc;
	default:
		if (fy_node_get_meta(n)) /* a node reached twice */
			return 0;
		if (fy_node_get_style(n) == FYNS_SINGLE_QUOTED)
			return unquote_single(n, text, tlen);
		return iterate_scalar(n);
	}
}

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* libfyaml 0.7.12 frees a simple key twice, and crashes, after reporting
 * "cannot use tab for indentation of block entry" behind a key (as in
 * "? a:<TAB>:"). So that never reaches it: in block context, outside quotes,
 * comments and block scalars, a tab in the blanks after an indicator
 * (- ? :) that precede another one (- ? : | >). Returns its offset or len. */
size_t k_pbjson_tab_indent_at(const char *s, size_t len)
{
	size_t i = 0, bs_indent = SIZE_MAX;
	char quote = 0;
	int flow = 0;

	while (i < len) {
		const char *nl = memchr(s + i, '\n', len - i);
		size_t eol = nl ? (size_t)(nl - s) : len, ind = i, tok = SIZE_MAX;
		char prev = ' ';

		while (ind < eol && s[ind] == ' ')
			ind++;
		/* a block scalar's body: blank or deeper lines */
		if (bs_indent != SIZE_MAX && (ind == eol || ind - i > bs_indent)) {
			i = eol + 1;
			continue;
		}
		bs_indent = SIZE_MAX;
		for (size_t j = i; j < eol; prev = s[j++]) {
			char ch = s[j];
			if (quote) {
				if (quote == '"' && ch == '\\' && j + 1 < eol)
					j++;
				else if (ch == quote && quote == '\'' && j + 1 < eol &&
					 s[j + 1] == '\'')
					j++;
				else if (ch == quote)
					quote = 0;
				continue;
			}
			if ((ch == '"' || ch == '\'') && strchr(" \t[{,:", prev)) {
				quote = ch;
				continue;
			}
			if (ch == '#' && blank(prev))
				break;
			if (!blank(ch) && blank(prev))
				tok = j;
			if ((ch == '[' || ch == '{') && strchr(" \t[{,:", prev)) {
				flow++;
			} else if ((ch == ']' || ch == '}') && flow) {
				flow--;
			} else if (!flow &&
				   (ch == ':' || (blank(prev) && (ch == '-' || ch == '?')))) {
				size_t k = j + 1;
				bool tab = false;
				while (k < eol && blank(s[k]))
					tab |= s[k++] == '\t';
				if (tab && k < eol &&
				    (strchr("?:|>", s[k]) ||
				     (s[k] == '-' && (k + 1 == eol || blank(s[k + 1])))))
					return j;
			}
		}
		/* "key: |" and the like: the lines below are text */
		if (!quote && !flow && tok != SIZE_MAX && (s[tok] == '|' || s[tok] == '>')) {
			size_t k = tok + 1;
			while (k < eol &&
			       (isdigit((unsigned char)s[k]) || s[k] == '+' || s[k] == '-'))
				k++;
			if (k == eol || blank(s[k]))
				bs_indent = ind - i;
		}
		i = eol + 1;
	}
	return len;
}

/* YAML reads CR, LF and CR LF alike, as one line break; libfyaml 0.7.12
 * miscounts CRs inside scalars, so it only ever sees LF. */
char *k_pbjson_lf_only(const char *text, size_t *len)
{
	char *out = malloc(*len);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < *len; i++) {
		if (text[i] != '\r')
			out[o++] = text[i];
		else if (i + 1 == *len || text[i + 1] != '\n')
			out[o++] = '\n';
	}
	*len = o;
	return out;
}
