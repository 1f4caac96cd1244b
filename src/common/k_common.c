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
