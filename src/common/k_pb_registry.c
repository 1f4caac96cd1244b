#include <string.h>

#include "k_pbjson.h"

/* Generated at build time (cmake/gen_registry.cmake), NULL-terminated. */
extern const ProtobufCMessageDescriptor *const k_pb_registry_table[];

const ProtobufCMessageDescriptor *k_pb_registry_find(const char *name)
{
	const char *slash = strrchr(name, '/');
	if (slash)
		name = slash + 1; /* "type.googleapis.com/x.y.Z" -> "x.y.Z" */
	for (size_t i = 0; k_pb_registry_table[i]; i++)
		if (strcmp(k_pb_registry_table[i]->name, name) == 0)
			return k_pb_registry_table[i];
	return NULL;
}
