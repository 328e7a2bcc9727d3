/*
 * schema_src.h - the config schema's Python sources, compiled into the
 * binary by gen_schema.py (schema_gen.c, generated at build time).
 * Internal to src/config.
 */
#ifndef BO_CONFIG_SCHEMA_SRC_H
#define BO_CONFIG_SCHEMA_SRC_H

#include <stddef.h>

struct bo_config_schema_file {
    const char *name;   /* "types.py" */
    const char *source; /* the whole file */
};

/* In execution order. */
extern const struct bo_config_schema_file bo_config_schema[];
extern const size_t bo_config_schema_n;

#endif
