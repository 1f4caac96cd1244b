/* fuzz_pbjson.c — libFuzzer target for the YAML/JSON <-> protobuf decoder
 * and encoder.
 *
 * The input is decoded as an Envoy Bootstrap (the file kite-proxy -c reads;
 * through its Any fields it reaches most of the API). A failure must come
 * with a terminated message naming the source; a success is encoded, and
 * the encoding must decode again to the same wire bytes. Any breach aborts
 * so the fuzzer records the input; leaks are caught by LeakSanitizer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "k_pbjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);  \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	*len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(*len + 1);
	CHECK(buf);
	CHECK(protobuf_c_message_pack(m, buf) == *len);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *desc =
		&envoy__config__bootstrap__v3__bootstrap__descriptor;
	ProtobufCMessage *m = NULL, *m2 = NULL;
	char err[512];
	int rc;

	rc = k_pbjson_decode((const char *)data, size, "fuzz.yaml", desc, &m, err, sizeof(err));
	if (rc) {
		CHECK(rc == K_EINVAL || rc == K_ENOMEM);
		CHECK(m == NULL);
		CHECK(memchr(err, '\0', sizeof(err)));
		CHECK(strncmp(err, "fuzz.yaml:", 10) == 0);
		return 0;
	}
	CHECK(m != NULL);

	char *json = k_pbjson_encode(m, size & 1 ? 2 : 0);
	CHECK(json);
	rc = k_pbjson_decode(json, strlen(json), "<encoded>", desc, &m2, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "re-decode failed: %s\n%s\n", err, json);
		abort();
	}
	size_t la, lb;
	uint8_t *a = pack(m, &la), *b = pack(m2, &lb);
	if (la != lb || memcmp(a, b, la)) {
		fprintf(stderr, "round trip changed the message:\n%s\n", json);
		abort();
	}
	free(a);
	free(b);
	free(json);
	protobuf_c_message_free_unpacked(m, NULL);
	protobuf_c_message_free_unpacked(m2, NULL);
	return 0;
}
