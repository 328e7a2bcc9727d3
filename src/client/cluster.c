/*
 * cluster.c - clusters.json: where the CLIs find a cluster's schedulers.
 *
 * Happy path: read /etc/borealis/clusters.json, then ~/.borealis/clusters.json,
 * then the file named by $BOREALIS_CLUSTERS; each is a JSON array of objects
 * with a string "name". Entries are merged by name, a later file's entry
 * replacing an earlier one whole (not field by field), and handed out sorted
 * by name.
 *
 * Failure modes:
 *   - a default file that does not exist is skipped; $BOREALIS_CLUSTERS
 *     naming a file that does not exist is BO_ENOTFOUND (the user asked for
 *     that file, so a typo must not silently fall back to the defaults);
 *   - a file that is not JSON, not an array, or has an entry without a name
 *     or with URLs of the wrong type is BO_EINVAL naming the file and entry;
 *   - ~ is $HOME; without $HOME the user file is skipped.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/client.h"
#include "common/mem.h"

#define SYSTEM_CLUSTERS "/etc/borealis/clusters.json"
#define USER_CLUSTERS   ".borealis/clusters.json"

static int check_entry(const char *path, size_t i, json_t *e, struct bo_err *err)
{
    if (!json_is_object(e))
        return bo_errf(err, BO_EINVAL, "'%s': entry %zu is not an object", path, i);
    json_t *name = json_object_get(e, "name");
    if (!json_is_string(name) || json_string_length(name) == 0)
        return bo_errf(err, BO_EINVAL, "'%s': entry %zu: \"name\" must be a non-empty string", path,
                       i);
    const char *n = json_string_value(name);
    json_t *uri = json_object_get(e, "scheduler_uri");
    if (uri != NULL && !json_is_null(uri) && !json_is_string(uri))
        return bo_errf(err, BO_EINVAL, "'%s': cluster '%s': \"scheduler_uri\" must be a string",
                       path, n);
    json_t *urls = json_object_get(e, "scheduler_urls");
    if (urls != NULL && !json_is_null(urls)) {
        if (!json_is_array(urls))
            return bo_errf(err, BO_EINVAL,
                           "'%s': cluster '%s': \"scheduler_urls\" must be an array of strings",
                           path, n);
        size_t j;
        json_t *u;
        json_array_foreach(urls, j, u)
        {
            if (!json_is_string(u) || json_string_length(u) == 0)
                return bo_errf(err, BO_EINVAL,
                               "'%s': cluster '%s': scheduler_urls[%zu] must be a non-empty string",
                               path, n, j);
        }
    }
    return BO_OK;
}

/* Merge the entries of `path` into `merged` (an object keyed by name). */
static int load_file(const char *path, bool must_exist, json_t *merged, struct bo_err *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        int e = errno;
        if (e == ENOENT && !must_exist)
            return BO_OK;
        return bo_errf(err, bo_err_from_errno(e), "cannot read '%s': %s", path, strerror(e));
    }
    json_error_t jerr;
    json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (doc == NULL)
        return bo_errf(err, BO_EINVAL, "'%s' is not valid JSON: %s at line %d column %d", path,
                       jerr.text, jerr.line, jerr.column);
    int rc = BO_OK;
    if (!json_is_array(doc)) {
        rc = bo_errf(err, BO_EINVAL, "'%s': expected a JSON array of clusters", path);
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(doc, i, e)
    {
        rc = check_entry(path, i, e, err);
        if (rc != BO_OK)
            goto out;
    }
    json_array_foreach(doc, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        if (json_object_set(merged, name, e) != 0) {
            rc = bo_errf(err, BO_ENOMEM, "'%s': out of memory", path);
            goto out;
        }
    }
out:
    json_decref(doc);
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int bo_clusters_load(json_t **out, struct bo_err *err)
{
    json_t *merged = json_object();
    if (merged == NULL)
        return bo_errf(err, BO_ENOMEM, "clusters: out of memory");
    int rc = load_file(SYSTEM_CLUSTERS, false, merged, err);
    const char *home = getenv("HOME");
    if (rc == BO_OK && home != NULL && home[0] != '\0') {
        size_t n = strlen(home) + 1 + sizeof(USER_CLUSTERS);
        char *p = bo_malloc(n);
        if (p == NULL) {
            rc = bo_errf(err, BO_ENOMEM, "clusters: out of memory");
        } else {
            snprintf(p, n, "%s/%s", home, USER_CLUSTERS);
            rc = load_file(p, false, merged, err);
            bo_free(p);
        }
    }
    const char *env = getenv("BOREALIS_CLUSTERS");
    if (rc == BO_OK && env != NULL && env[0] != '\0')
        rc = load_file(env, true, merged, err);
    if (rc != BO_OK) {
        json_decref(merged);
        return rc;
    }

    /* sorted by name */
    size_t n = json_object_size(merged);
    const char **names = bo_calloc(n ? n : 1, sizeof(*names));
    json_t *arr = json_array();
    if (names == NULL || arr == NULL) {
        bo_free(names);
        json_decref(arr);
        json_decref(merged);
        return bo_errf(err, BO_ENOMEM, "clusters: out of memory");
    }
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(merged, key, v)
    {
        names[k++] = key;
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    for (k = 0; k < n; k++) {
        if (json_array_append(arr, json_object_get(merged, names[k])) != 0) {
            rc = bo_errf(err, BO_ENOMEM, "clusters: out of memory");
            break;
        }
    }
    bo_free(names);
    json_decref(merged);
    if (rc != BO_OK) {
        json_decref(arr);
        return rc;
    }
    *out = arr;
    return BO_OK;
}

static char *strip_url(const char *u)
{
    size_t n = strlen(u);
    while (n > 0 && u[n - 1] == '/')
        n--;
    return bo_strndup(u, n);
}

int bo_cluster_find(const char *name, struct bo_cluster *out, struct bo_err *err)
{
    json_t *all;
    int rc = bo_clusters_load(&all, err);
    if (rc != BO_OK)
        return rc;
    json_t *entry = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0) {
            entry = e;
            break;
        }
    }
    if (entry == NULL) {
        char known[256] = "";
        size_t used = 0;
        json_array_foreach(all, i, e)
        {
            int w = snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "",
                             json_string_value(json_object_get(e, "name")));
            if (w < 0 || (size_t)w >= sizeof(known) - used) {
                memcpy(known + sizeof(known) - 4, "...", 4);
                used = sizeof(known) - 1;
                break;
            }
            used += (size_t)w;
        }
        json_decref(all);
        return bo_errf(err, BO_ENOTFOUND, "unknown cluster '%s' (known: %s)", name,
                       used ? known : "none; see docs/client.md");
    }

    struct bo_cluster c = {0};
    c.entry = json_incref(entry);
    json_decref(all);
    c.name = bo_strdup(name);
    json_t *urls = json_object_get(entry, "scheduler_urls");
    json_t *uri = json_object_get(entry, "scheduler_uri");
    size_t n = json_is_array(urls) ? json_array_size(urls) : 0;
    if (n == 0 && json_is_string(uri) && json_string_length(uri) > 0)
        n = 1;
    if (n == 0) {
        bo_cluster_release(&c);
        return bo_errf(err, BO_EINVAL, "cluster '%s' has neither scheduler_urls nor scheduler_uri",
                       name);
    }
    c.urls = bo_calloc(n, sizeof(*c.urls));
    if (c.name == NULL || c.urls == NULL) {
        bo_cluster_release(&c);
        return bo_errf(err, BO_ENOMEM, "cluster '%s': out of memory", name);
    }
    for (i = 0; i < n; i++) {
        const char *u = json_is_array(urls) && json_array_size(urls) > 0
                            ? json_string_value(json_array_get(urls, i))
                            : json_string_value(uri);
        c.urls[i] = strip_url(u);
        if (c.urls[i] == NULL) {
            bo_cluster_release(&c);
            return bo_errf(err, BO_ENOMEM, "cluster '%s': out of memory", name);
        }
        c.n_urls++;
    }
    *out = c;
    return BO_OK;
}

void bo_cluster_release(struct bo_cluster *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_urls; i++)
        bo_free(c->urls[i]);
    bo_free(c->urls);
    bo_free(c->name);
    json_decref(c->entry);
    *c = (struct bo_cluster){0};
}
