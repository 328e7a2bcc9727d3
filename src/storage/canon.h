/*
 * canon.h - canonical form of a TaskConfig.
 *
 * Protobuf has no sets and no canonical map order, so two equal configs can
 * encode differently. Before a config is hashed or stored, its set-like fields
 * are sorted: the ones Aurora declared as sets or maps (resources,
 * constraints and their values, fetcher URIs, task links, metadata). Lists
 * (volumes, docker parameters) keep their order, which means something.
 * protobuf-c packs fields in number order, so equal configs give equal bytes.
 */
#ifndef BO_CANON_H
#define BO_CANON_H

#include <stdbool.h>

#include "common/buf.h"
#include "storage.pb-c.h"

/* Sort the set-like fields of `c` in place. */
void bo_canon_task_config(Bo__TaskConfig *c);

/* True if `c` is in canonical order already, so that its encoding is its
 * canonical encoding (bo_canon_task_config would change nothing). Lets the
 * store hash a config as it came, without a copy to sort. */
bool bo_canon_task_config_is_canonical(const Bo__TaskConfig *c);

/* Canonicalize `c` in place and append its encoding to `out`. */
int bo_canon_encode_config(Bo__TaskConfig *c, struct bo_buf *out);

/* Append the canonical encoding of `c` to `out`, leaving `c` as it is: the
 * arrays out of order are sorted as copies (shallow: the elements are
 * shared) allocated from `a`, which this function never frees (an arena's
 * allocator fits). Equal bytes to bo_canon_encode_config on a copy of `c`. */
int bo_canon_encode_config_const(const Bo__TaskConfig *c, ProtobufCAllocator *a,
                                 struct bo_buf *out);

/* Sort host attribute names and values in place (for stable query output). */
void bo_canon_host_attributes(Bo__HostAttributes *h);

#endif
