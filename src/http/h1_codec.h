/* h1_codec.h — strict, zero-copy HTTP/1.x message parsing (RFC 9110, 9112).
 *
 * The codec never allocates and never copies: every k_str it returns points
 * into the caller's input buffer, which must stay alive and unmoved while the
 * parsed message is in use. It keeps no state between messages except the
 * body decoder, which the caller owns.
 *
 * Strictness is the point: this parser sits in front of servers whose own
 * parsers differ, and any disagreement about where a message ends is a
 * request-smuggling hole. So it accepts exactly one reading of each message
 * and rejects everything ambiguous instead of guessing:
 *   - CRLF line endings only; a bare CR or a bare LF is an error.
 *   - Content-Length together with Transfer-Encoding; more than one
 *     Content-Length header (even with equal values); a Content-Length that
 *     is not 1*DIGIT or overflows 2^63.
 *   - Transfer-Encoding other than exactly "chunked" (case-insensitive,
 *     possibly split over headers, once): 501 for codings we do not
 *     implement, 400 for "chunked" appearing twice or not last; any
 *     Transfer-Encoding in an HTTP/1.0 request: 400.
 *   - whitespace between a field name and the colon; obs-fold (a line
 *     starting with SP/HTAB); empty field names; non-token bytes in names;
 *     NUL, CR, LF or other CTL (except HTAB) in values.
 *   - request line: method must be a token, exactly one SP between parts,
 *     target must be visible ASCII, version exactly "HTTP/1.0" or "HTTP/1.1"
 *     (other HTTP/x.y: 505).
 *   - HTTP/1.1 requests without exactly one Host header: 400.
 *   - chunk sizes that are not 1*HEXDIG, longer than 16 digits, or followed
 *     by anything but chunk extensions and CRLF.
 */
#ifndef K_H1_CODEC_H
#define K_H1_CODEC_H

#include "k_common.h"

#define K_H1_DEFAULT_MAX_HEAD_BYTES (60u * 1024u) /* Envoy max_request_headers_kb */
#define K_H1_DEFAULT_MAX_HEADERS    100u	  /* Envoy max_headers_count */
#define K_H1_MAX_CHUNK_LINE	    4096u	  /* chunk-size line incl. extensions */

struct k_h1_limits {
	uint32_t max_head_bytes; /* start line + fields + final CRLF */
	uint32_t max_headers;	 /* field lines in a head or trailer section */
};

struct k_h1_header {
	struct k_str name;  /* as received; compare with k_str_ieq */
	struct k_str value; /* leading/trailing SP and HTAB removed */
};

enum k_h1_body_kind {
	K_H1_BODY_NONE = 0, /* no content follows the head */
	K_H1_BODY_LENGTH,   /* exactly content_length bytes */
	K_H1_BODY_CHUNKED,  /* chunked transfer coding */
	K_H1_BODY_CLOSE,    /* responses only: until the connection closes */
};

enum k_h1_target_form {
	K_H1_TARGET_ORIGIN = 0, /* "/path?query" */
	K_H1_TARGET_ABSOLUTE,	/* "http://host:port/path" (forward proxy) */
	K_H1_TARGET_AUTHORITY,	/* "host:port", CONNECT only */
	K_H1_TARGET_ASTERISK,	/* "*", OPTIONS only */
};

/* Flags describing the request a response answers; they change framing. */
enum {
	K_H1_REQ_HEAD = 1u << 0,    /* response to HEAD has no body */
	K_H1_REQ_CONNECT = 1u << 1, /* 2xx to CONNECT is a tunnel, no body */
};

struct k_h1_msg {
	/* request line (requests only) */
	struct k_str method;
	struct k_str target;
	enum k_h1_target_form target_form;
	/* status line (responses only) */
	int status;
	struct k_str reason;

	int minor;		     /* HTTP/1.<minor>: 0 or 1 */
	struct k_h1_header *headers; /* the caller's array, nheaders used */
	uint32_t nheaders;
	uint32_t head_len; /* bytes of the head including the empty line */

	enum k_h1_body_kind body;
	uint64_t content_length; /* valid when body == K_H1_BODY_LENGTH */

	int host_idx;		      /* index into headers of Host, or -1 */
	unsigned keep_alive : 1;      /* version default, adjusted by Connection */
	unsigned expect_continue : 1; /* request: "Expect: 100-continue" */
	unsigned upgrade : 1;	      /* Connection: upgrade and an Upgrade field */
	unsigned has_te_trailers : 1; /* request: "TE: trailers" */
	/* request: an Expect field other than 100-continue (on HTTP/1.1) was
	 * received; the caller decides (Envoy ignores it, a server may 417). */
	unsigned expect_other : 1;

	/* Request target split for routing and for rewriting absolute-form to
	 * origin-form (spans into the target):
	 *   ORIGIN:    authority "",          path = target
	 *   ABSOLUTE:  authority "host:port", path = rest after the authority
	 *              ("" when the URI has no path: send "/"; may start
	 *              with '?')
	 *   AUTHORITY: authority = target,    path ""
	 *   ASTERISK:  authority "",          path "*"
	 * Authorities are validated like Host (no userinfo). */
	struct k_str authority;
	struct k_str path;
};

/* Where and why a message was rejected. `reason` is static text fit for a
 * log line and an x-kite-error header ("Content-Length with
 * Transfer-Encoding"); `status` is the response a server should send (400,
 * 431, 501, 505 for requests; 502 for a bad response from upstream). */
struct k_h1_error {
	int status;
	const char *reason;
	uint32_t offset; /* byte offset of the fault within the input */
};

/* Parse a request head from buf[0..len).
 *   lim:      NULL means the K_H1_DEFAULT_* limits (so does a 0 field).
 *   prev_len: bytes of this same buffer already passed in an earlier call
 *             that returned K_EAGAIN (0 the first time); lets a slow client
 *             that sends one byte at a time cost O(n), not O(n^2). Such a
 *             call checks the new bytes (CTLs, bare CR/LF) at once and the
 *             whole structure when the head ends, reaches the limit or
 *             grows past a power of two; the final result is the same as
 *             for the head in one piece.
 *   hdrs/hdrs_cap: storage for the fields; hdrs_cap >= lim->max_headers
 *             (a smaller array lowers the field limit to hdrs_cap).
 * Empty lines (CRLF) before the request line are skipped (RFC 9112 §2.2)
 * and counted in head_len. Fragments ('#') in the target are rejected, as
 * Envoy does. A Host value must be uri-host[:port] with a 1-5 digit port;
 * ',' is refused in it although RFC 3986 allows it in reg-name, since it
 * can only be a list smuggled into one field. A CONNECT request with
 * Content-Length > 0 or Transfer-Encoding is refused (400): what follows its
 * head is the tunnel.
 * Returns msg->head_len (> 0) on success, with the body framing decided.
 * K_EAGAIN: the head is incomplete and still within limits; call again with
 *   more bytes (same start).
 * K_EINVAL, K_ELIMIT, K_ENOTSUP: rejected; *err says why (status 400, 431,
 *   501 or 505). The connection must be closed after the error response. */
int k_h1_parse_request(const char *buf, size_t len, size_t prev_len, const struct k_h1_limits *lim,
		       struct k_h1_msg *msg, struct k_h1_header *hdrs, uint32_t hdrs_cap,
		       struct k_h1_error *err);

/* Parse a response head, as k_h1_parse_request. req_flags (K_H1_REQ_*)
 * describe the request being answered. 1xx responses parse with
 * body == K_H1_BODY_NONE; the caller then parses the next head. Errors have
 * status 502 (the return code still tells the class: K_EINVAL, K_ELIMIT,
 * K_ENOTSUP). The reason phrase may be absent together with its SP
 * ("HTTP/1.1 200\r\n"), as many servers send it. Content-Length and
 * Transfer-Encoding are checked (one CL, not both, TE only in HTTP/1.1)
 * even when the status or req_flags rule out a body. */
int k_h1_parse_response(const char *buf, size_t len, size_t prev_len, const struct k_h1_limits *lim,
			unsigned req_flags, struct k_h1_msg *msg, struct k_h1_header *hdrs,
			uint32_t hdrs_cap, struct k_h1_error *err);

/* True when a Connection field of msg lists token (case-insensitive). Used
 * to drop the hop-by-hop fields a sender names there. */
int k_h1_connection_has(const struct k_h1_msg *msg, struct k_str token);

/* Incremental body decoder: removes the framing, yields payload spans. */
struct k_h1_body_dec {
	enum k_h1_body_kind kind;
	uint64_t remaining; /* LENGTH: bytes left; CHUNKED: left in this chunk */
	uint32_t state;	    /* internal chunked-parser state */
	uint32_t line_len;  /* bytes of the current size or trailer line */
	uint32_t trailer_bytes;
	uint32_t ntrailers;
	uint64_t size_acc; /* chunk size being accumulated */
	uint32_t size_digits;
	struct k_h1_limits lim;
	unsigned done : 1;
	unsigned response : 1; /* errors carry 502 instead of 400/431 */
	unsigned failed : 1;   /* an error was returned; it is sticky */
};

void k_h1_body_init(struct k_h1_body_dec *d, const struct k_h1_msg *msg,
		    const struct k_h1_limits *lim);

/* Consume framing and payload from in[0..len). On success returns the
 * number of bytes consumed (0..len) and sets *data to the payload found
 * (a span inside `in`, possibly empty); call again with the rest. When the
 * body has ended (last chunk and trailer section read, or content-length
 * reached) d->done is set and no further bytes are consumed: what remains
 * belongs to the next message. Trailer fields are validated against the
 * field rules and limits and then discarded (Envoy's default for HTTP/1).
 * For K_H1_BODY_CLOSE, every byte is payload; the caller ends the body on
 * EOF. Returns K_EINVAL or K_ELIMIT with *err on bad framing: status 400
 * (431 for a trailer section over the limits) when decoding a request body,
 * 502 for a response body; the decoder then stays failed. err->offset is
 * the faulty byte's index in this call's `in`. Payload that precedes a
 * fault in the same input is returned first (success, consumed up to the
 * fault) and the error comes on the next call, so payload and error do not
 * depend on how the input was split. A call consumes at least one byte
 * whenever len > 0 and the body is not done, so a caller loop always
 * progresses, and at most INT_MAX bytes. Chunk extensions are checked
 * (token or quoted-string values, BWS around ';' and '=') and dropped. */
int k_h1_body_decode(struct k_h1_body_dec *d, const char *in, size_t len, struct k_str *data,
		     struct k_h1_error *err);

/* Write the chunk-size line for a chunk of `size` bytes ("1a2b\r\n") to out,
 * which must hold K_H1_CHUNK_HEADER_MAX bytes. Returns its length. */
#define K_H1_CHUNK_HEADER_MAX 20
size_t k_h1_chunk_header(char *out, uint64_t size);
#define K_H1_LAST_CHUNK "0\r\n\r\n"

/* Standard reason phrase for a status code ("Service Unavailable"); "" if
 * unknown. Never NULL. */
const char *k_h1_reason(int status);

/* RFC 9110 token character and field-value character tests. */
int k_h1_is_tchar(unsigned char c);
/* HTAB, SP, VCHAR or obs-text: a byte allowed inside a field value. */
int k_h1_is_field_char(unsigned char c);

#endif
