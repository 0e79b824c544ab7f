/*  jm_yaml.c - libyaml event stream -> jm_ynode_t tree.

    The event API is used (not the document API) so that every node keeps
    the mark where it starts, and so that aliases and complex keys can be
    refused with a precise position. */
#include "jm_yaml.h"
#include "jm_util.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define JM_YAML_MAX_DEPTH 64

typedef struct {
    yaml_parser_t parser;
    const char *name;
    char *err;
    size_t errlen;
} jm_yctx_t;

static jm_ynode_t *
s_node_new (jm_ynode_type_t type, const yaml_mark_t *mark)
{
    jm_ynode_t *self = calloc (1, sizeof (*self));
    assert (self);
    self->type = type;
    self->line = (int)mark->line + 1;
    self->column = (int)mark->column + 1;
    return self;
}

void
jm_ynode_destroy (jm_ynode_t **self_p)
{
    assert (self_p);
    jm_ynode_t *self = *self_p;
    if (!self)
        return;
    free (self->value);
    for (size_t i = 0; i < self->n; i++) {
        jm_ynode_destroy (&self->items[i]);
        if (self->keys)
            free (self->keys[i]);
    }
    free (self->items);
    free (self->keys);
    free (self->key_lines);
    free (self);
    *self_p = NULL;
}

static int
s_parser_error (jm_yctx_t *ctx)
{
    yaml_parser_t *p = &ctx->parser;
    const yaml_mark_t *m = &p->problem_mark;
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_READER_ERROR)
        return jm_err (ctx->err, ctx->errlen, "%s: %s at byte %zu", ctx->name, problem,
                       p->problem_offset);
    if (p->context)
        return jm_err (ctx->err, ctx->errlen, "%s:%zu:%zu: %s %s", ctx->name, m->line + 1,
                       m->column + 1, problem, p->context);
    return jm_err (ctx->err, ctx->errlen, "%s:%zu:%zu: %s", ctx->name, m->line + 1, m->column + 1,
                   problem);
}

static int
s_next (jm_yctx_t *ctx, yaml_event_t *ev)
{
    if (!yaml_parser_parse (&ctx->parser, ev))
        return s_parser_error (ctx);
    return 0;
}

static int
s_at (jm_yctx_t *ctx, const yaml_mark_t *m, const char *what)
{
    return jm_err (ctx->err, ctx->errlen, "%s:%zu:%zu: %s", ctx->name, m->line + 1, m->column + 1,
                   what);
}

static int
s_anchor (jm_yctx_t *ctx, const yaml_mark_t *m, const yaml_char_t *anchor)
{
    return jm_err (ctx->err, ctx->errlen, "%s:%zu:%zu: anchor '&%.100s': aliases are not supported",
                   ctx->name, m->line + 1, m->column + 1, (const char *)anchor);
}

static void
s_push (jm_ynode_t *node, jm_ynode_t *item, char *key, int key_line)
{
    node->items = realloc (node->items, (node->n + 1) * sizeof (*node->items));
    assert (node->items);
    node->items[node->n] = item;
    if (node->type == JM_Y_MAP) {
        node->keys = realloc (node->keys, (node->n + 1) * sizeof (*node->keys));
        node->key_lines = realloc (node->key_lines, (node->n + 1) * sizeof (int));
        assert (node->keys && node->key_lines);
        node->keys[node->n] = key;
        node->key_lines[node->n] = key_line;
    }
    node->n++;
}

/*  Builds the node that starts with *ev (already received; consumed here).
    Returns NULL + err. */
static jm_ynode_t *s_parse_node (jm_yctx_t *ctx, yaml_event_t *ev, int depth);

static jm_ynode_t *
s_parse_collection (jm_yctx_t *ctx, jm_ynode_t *node, yaml_event_type_t end, int depth)
{
    for (;;) {
        yaml_event_t ev;
        if (s_next (ctx, &ev))
            goto fail;
        if (ev.type == end) {
            yaml_event_delete (&ev);
            return node;
        }
        if (node->type == JM_Y_SEQ) {
            jm_ynode_t *item = s_parse_node (ctx, &ev, depth + 1);
            if (!item)
                goto fail;
            s_push (node, item, NULL, 0);
            continue;
        }
        /* map: key must be a scalar */
        if (ev.type == YAML_ALIAS_EVENT) {
            s_at (ctx, &ev.start_mark, "aliases are not supported");
            yaml_event_delete (&ev);
            goto fail;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            s_at (ctx, &ev.start_mark, "map keys must be scalars");
            yaml_event_delete (&ev);
            goto fail;
        }
        if (ev.data.scalar.anchor) {
            s_anchor (ctx, &ev.start_mark, ev.data.scalar.anchor);
            yaml_event_delete (&ev);
            goto fail;
        }
        if (memchr (ev.data.scalar.value, 0, ev.data.scalar.length)) {
            s_at (ctx, &ev.start_mark, "NUL character in a key");
            yaml_event_delete (&ev);
            goto fail;
        }
        char *key = strndup ((const char *)ev.data.scalar.value, ev.data.scalar.length);
        int key_line = (int)ev.start_mark.line + 1;
        yaml_mark_t key_mark = ev.start_mark;
        yaml_event_delete (&ev);
        for (size_t i = 0; i < node->n; i++)
            if (strcmp (node->keys[i], key) == 0) {
                char what[512];
                snprintf (what, sizeof (what), "duplicate key '%.400s'", key);
                s_at (ctx, &key_mark, what);
                free (key);
                goto fail;
            }
        if (s_next (ctx, &ev)) {
            free (key);
            goto fail;
        }
        jm_ynode_t *value = s_parse_node (ctx, &ev, depth + 1);
        if (!value) {
            free (key);
            goto fail;
        }
        s_push (node, value, key, key_line);
    }
fail:
    jm_ynode_destroy (&node);
    return NULL;
}

static jm_ynode_t *
s_parse_node (jm_yctx_t *ctx, yaml_event_t *ev, int depth)
{
    jm_ynode_t *node = NULL;
    if (depth > JM_YAML_MAX_DEPTH) {
        s_at (ctx, &ev->start_mark, "nesting too deep");
        yaml_event_delete (ev);
        return NULL;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        s_at (ctx, &ev->start_mark, "aliases are not supported");
        break;
    case YAML_SCALAR_EVENT:
        if (ev->data.scalar.anchor) {
            s_anchor (ctx, &ev->start_mark, ev->data.scalar.anchor);
            break;
        }
        if (memchr (ev->data.scalar.value, 0, ev->data.scalar.length)) {
            s_at (ctx, &ev->start_mark, "NUL character in a scalar");
            break;
        }
        node = s_node_new (JM_Y_SCALAR, &ev->start_mark);
        node->value = strndup ((const char *)ev->data.scalar.value, ev->data.scalar.length);
        assert (node->value);
        node->quoted = ev->data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                       ev->data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
        break;
    case YAML_SEQUENCE_START_EVENT:
        if (ev->data.sequence_start.anchor) {
            s_anchor (ctx, &ev->start_mark, ev->data.sequence_start.anchor);
            break;
        }
        node = s_node_new (JM_Y_SEQ, &ev->start_mark);
        yaml_event_delete (ev);
        return s_parse_collection (ctx, node, YAML_SEQUENCE_END_EVENT, depth);
    case YAML_MAPPING_START_EVENT:
        if (ev->data.mapping_start.anchor) {
            s_anchor (ctx, &ev->start_mark, ev->data.mapping_start.anchor);
            break;
        }
        node = s_node_new (JM_Y_MAP, &ev->start_mark);
        yaml_event_delete (ev);
        return s_parse_collection (ctx, node, YAML_MAPPING_END_EVENT, depth);
    default:
        s_at (ctx, &ev->start_mark, "unexpected YAML event");
        break;
    }
    yaml_event_delete (ev);
    return node;
}

static jm_ynode_t *
s_load (jm_yctx_t *ctx)
{
    yaml_event_t ev;
    jm_ynode_t *root = NULL;
    if (s_next (ctx, &ev))
        return NULL;
    if (ev.type != YAML_STREAM_START_EVENT) {
        yaml_event_delete (&ev);
        jm_err (ctx->err, ctx->errlen, "%s: not a YAML stream", ctx->name);
        return NULL;
    }
    yaml_event_delete (&ev);
    if (s_next (ctx, &ev))
        return NULL;
    if (ev.type == YAML_STREAM_END_EVENT) {
        /* an empty file (or only comments) reads as a null document */
        root = s_node_new (JM_Y_SCALAR, &ev.start_mark);
        root->line = root->column = 1;
        root->value = strdup ("");
        yaml_event_delete (&ev);
        return root;
    }
    if (ev.type != YAML_DOCUMENT_START_EVENT) {
        s_at (ctx, &ev.start_mark, "expected a document");
        yaml_event_delete (&ev);
        return NULL;
    }
    yaml_event_delete (&ev);
    if (s_next (ctx, &ev))
        return NULL;
    root = s_parse_node (ctx, &ev, 0);
    if (!root)
        return NULL;
    if (s_next (ctx, &ev))
        goto fail;
    /* document end */
    yaml_event_delete (&ev);
    if (s_next (ctx, &ev))
        goto fail;
    if (ev.type != YAML_STREAM_END_EVENT) {
        s_at (ctx, &ev.start_mark, "more than one document");
        yaml_event_delete (&ev);
        goto fail;
    }
    yaml_event_delete (&ev);
    return root;
fail:
    jm_ynode_destroy (&root);
    return NULL;
}

jm_ynode_t *
jm_yaml_load_string (const char *text, size_t len, const char *name, char *err, size_t errlen)
{
    assert (text);
    jm_yctx_t ctx = {.name = name ? name : "<string>", .err = err, .errlen = errlen};
    if (!yaml_parser_initialize (&ctx.parser)) {
        jm_err (err, errlen, "%s: cannot initialise YAML parser", ctx.name);
        return NULL;
    }
    yaml_parser_set_input_string (&ctx.parser, (const unsigned char *)text, len);
    jm_ynode_t *root = s_load (&ctx);
    yaml_parser_delete (&ctx.parser);
    return root;
}

jm_ynode_t *
jm_yaml_load_file (const char *path, char *err, size_t errlen)
{
    assert (path);
    size_t len = 0;
    char *text = jm_read_file (path, &len, err, errlen);
    if (!text)
        return NULL;
    jm_ynode_t *root = jm_yaml_load_string (text, len, path, err, errlen);
    free (text);
    return root;
}

const jm_ynode_t *
jm_ynode_get (const jm_ynode_t *self, const char *key)
{
    if (!self || self->type != JM_Y_MAP || !key)
        return NULL;
    for (size_t i = 0; i < self->n; i++)
        if (strcmp (self->keys[i], key) == 0)
            return self->items[i];
    return NULL;
}

bool
jm_ynode_is_null (const jm_ynode_t *self)
{
    if (!self || self->type != JM_Y_SCALAR || self->quoted)
        return false;
    const char *v = self->value;
    return !*v || strcmp (v, "~") == 0 || strcmp (v, "null") == 0 || strcmp (v, "Null") == 0 ||
           strcmp (v, "NULL") == 0;
}

int
jm_ynode_bool (const jm_ynode_t *self, bool *out)
{
    static const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *no[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"};
    if (!self || self->type != JM_Y_SCALAR || self->quoted)
        return -1;
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        if (strcmp (self->value, yes[i]) == 0)
            return *out = true, 0;
        if (strcmp (self->value, no[i]) == 0)
            return *out = false, 0;
    }
    return -1;
}
