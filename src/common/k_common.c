#include "k_common.h"

const char *k_strerror(int err)
{
	switch (err) {
	case K_OK: return "K_OK";
	case K_ENOMEM: return "K_ENOMEM";
	case K_EINVAL: return "K_EINVAL";
	case K_EAGAIN: return "K_EAGAIN";
	case K_ELIMIT: return "K_ELIMIT";
	case K_ENOTSUP: return "K_ENOTSUP";
	case K_ENOENT: return "K_ENOENT";
	case K_EIO: return "K_EIO";
	case K_ETIMEDOUT: return "K_ETIMEDOUT";
	case K_ECLOSED: return "K_ECLOSED";
	}
	return "K_E?";
}

static inline unsigned char k_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

int k_str_ieq(struct k_str a, struct k_str b)
{
	if (a.len != b.len)
		return 0;
	for (size_t i = 0; i < a.len; i++)
		if (k_lower((unsigned char)a.p[i]) != k_lower((unsigned char)b.p[i]))
			return 0;
	return 1;
}

int k_hex_val(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int k_pct_decode(struct k_str s, char *out, size_t cap, unsigned flags)
{
	size_t n = 0;
	for (size_t i = 0; i < s.len; i++) {
		char ch = s.p[i];
		if (ch == '%') {
			if (i + 2 >= s.len)
				return K_EINVAL;
			int h = k_hex_val(s.p[i + 1]), l = k_hex_val(s.p[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0))
				return K_EINVAL;
			ch = (char)(h << 4 | l);
			i += 2;
		} else if (ch == '+' && (flags & K_PCT_PLUS_SPACE)) {
			ch = ' ';
		}
		if (n + 1 >= cap)
			return K_EINVAL;
		out[n++] = ch;
	}
	if (!cap)
		return K_EINVAL;
	out[n] = '\0';
	return (int)n;
}
