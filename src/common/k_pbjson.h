/* k_pbjson.h — YAML/JSON text <-> protobuf-c messages, by descriptor.
 *
 * One generic decoder for every message type: it walks the message's
 * ProtobufCMessageDescriptor and the YAML/JSON document tree (libfyaml)
 * side by side, following the proto3 JSON mapping:
 *   - field names in snake_case (proto name) or lowerCamelCase (json name);
 *   - enums by name (or number); 64-bit integers as numbers or strings;
 *     bytes as base64; maps as objects;
 *   - well-known types: google.protobuf.Duration as "1.5s",
 *     Timestamp as RFC 3339, the wrappers (UInt32Value, BoolValue, ...) as
 *     their bare value, Struct/Value/ListValue as any JSON, Empty as {},
 *     Any as an object with "@type": "type.googleapis.com/<full.name>"
 *     whose other keys are the packed message's fields (or "value" for a
 *     well-known type), resolved through k_pb_registry_find().
 * Unknown fields, wrong types, two members of one oneof, out-of-range
 * numbers and unknown enum names are errors. The error message names the
 * source and line and the field path, then the rule:
 *   "bootstrap.yaml:12: static_resources.clusters[0].lb_policy: unknown enum
 *    value \"ROUNDROBIN\" (envoy.config.cluster.v3.Cluster.LbPolicy), did you
 *    mean \"ROUND_ROBIN\"?"
 * Path segments are the keys as the input spells them (snake_case or
 * camelCase), list items as [i], map keys as ["key"]. protobuf-c keeps no
 * oneof names, so a conflict names the two fields: "two members of a oneof
 * set: type, cluster_type".
 *
 * YAML details: plain scalars are fine wherever a string is expected
 * (`cluster: 8080` is "8080"); null, ~ and an empty value mean "default";
 * anchors, aliases and << merge keys are resolved (with a cap on how far
 * aliases may expand the document); exactly one document per input, in
 * UTF-8 and without the control characters YAML forbids; "*a/b" path
 * aliases are refused.
 * Every allocation in a decoded message comes from malloc, so
 * protobuf_c_message_free_unpacked(msg, NULL) releases it.
 *
 * The encoder is the reverse (used by /config_dump): proto3 JSON with the
 * proto field names, default-valued scalars omitted, 64-bit integers as
 * strings, Any expanded (an Any whose type is unknown or whose bytes do not
 * decode is printed as {"@type": ..., "value": "<base64>"}). For anything the
 * decoder produced, decoding the encoder's output gives the same message.
 */
#ifndef K_PBJSON_H
#define K_PBJSON_H

#include <protobuf-c/protobuf-c.h>

#include "k_common.h"

/* Decode the single document in text[0..len) (YAML 1.2 or JSON) as a
 * message of type `desc`. `source` names the input in errors (a file name,
 * "<xds>", ...). On success returns 0 and *out owns a message to free with
 * protobuf_c_message_free_unpacked(*out, NULL). On failure returns K_EINVAL
 * (bad input; err holds the message, always NUL-terminated) or K_ENOMEM and
 * *out is NULL. */
int k_pbjson_decode(const char *text, size_t len, const char *source,
		    const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out, char *err,
		    size_t errlen);

/* As k_pbjson_decode, reading the file at path. K_EIO if it cannot be read
 * (err says why). */
int k_pbjson_decode_file(const char *path, const ProtobufCMessageDescriptor *desc,
			 ProtobufCMessage **out, char *err, size_t errlen);

/* Encode msg as JSON. Returns a malloc'd NUL-terminated string the caller
 * frees, or NULL on allocation failure. indent > 0 pretty-prints. */
char *k_pbjson_encode(const ProtobufCMessage *msg, int indent);

/* Unpack a google.protobuf.Any (given as its type_url and value bytes)
 * whose type must be `expect` (or any registered type when expect is NULL).
 * Returns 0 and *out (free with protobuf_c_message_free_unpacked), K_ENOENT
 * for an unknown type URL, K_EINVAL for a mismatch or undecodable bytes;
 * err explains. */
int k_pb_any_unpack(const char *type_url, const uint8_t *data, size_t len,
		    const ProtobufCMessageDescriptor *expect, ProtobufCMessage **out, char *err,
		    size_t errlen);

/* Descriptor of a message by its full name ("envoy.config.cluster.v3.Cluster"),
 * or by a type URL ("type.googleapis.com/..."); NULL if unknown. Covers every
 * message compiled from api/ and the well-known types; the table is generated
 * at build time. */
const ProtobufCMessageDescriptor *k_pb_registry_find(const char *name);

/* ---- internal to k_pbjson.c and k_pbjson_enc.c ---- */

/* The types whose JSON form is not a plain object of fields. */
enum k_pbjson_wkt {
	K_WKT_NONE = 0,	 /* an ordinary message: an object of its fields */
	K_WKT_ANY,	 /* {"@type": ..., fields or "value"} */
	K_WKT_DURATION,	 /* "1.5s" */
	K_WKT_TIMESTAMP, /* "2024-01-31T12:00:00Z" */
	K_WKT_WRAPPER,	 /* the bare value of field 1 */
	K_WKT_STRUCT,	 /* any JSON object */
	K_WKT_VALUE,	 /* any JSON value */
	K_WKT_LIST,	 /* any JSON array */
};
enum k_pbjson_wkt k_pbjson_wkt_of(const ProtobufCMessageDescriptor *desc);

/* Nonzero if fd is a map<K,V> field: protoc makes it a repeated message of
 * a nested "XxxEntry" type with key = 1 and value = 2. */
int k_pbjson_is_map(const ProtobufCFieldDescriptor *fd);

/* Length of the valid UTF-8 sequence at s (1 for ASCII), 0 if invalid. */
size_t k_pbjson_utf8_seq(const unsigned char *s, size_t left);

/* Standard or URL-safe base64, padding optional, line breaks skipped, into
 * a malloc'd buffer. 0, K_EINVAL (malformed) or K_ENOMEM. */
int k_pbjson_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);

/* "1.5s", "-0.000000001s" (at most 9 decimals) and RFC 3339 timestamps.
 * 0, K_EINVAL (malformed) or K_ELIMIT (outside the type's range). */
int k_pbjson_parse_duration(const char *s, int64_t *seconds, int32_t *nanos);
int k_pbjson_parse_timestamp(const char *s, int64_t *seconds, int32_t *nanos);

#endif
