/*  jm_yaml.h - a YAML (and therefore JSON) document as a small tree, via
    libyaml.  Every node remembers its line and column for error messages. */
#ifndef JM_YAML_H
#define JM_YAML_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JM_Y_SCALAR, JM_Y_SEQ, JM_Y_MAP } jm_ynode_type_t;

typedef struct jm_ynode {
    jm_ynode_type_t type;
    int line, column;        /* 1-based */
    char *value;             /* SCALAR: text (never NULL) */
    bool quoted;             /* SCALAR: was quoted ("..."/'...') */
    size_t n;                /* SEQ: items, MAP: pairs */
    struct jm_ynode **items; /* SEQ items, or MAP values */
    char **keys;             /* MAP keys (scalar keys only) */
    int *key_lines;          /* MAP key lines */
} jm_ynode_t;

/* Parse a file / string holding one document.  Aliases are refused; a
   non-scalar map key is refused.  NULL + err "FILE:LINE:COL: problem". */
jm_ynode_t *jm_yaml_load_file (const char *path, char *err, size_t errlen);
jm_ynode_t *jm_yaml_load_string (const char *text, size_t len, const char *name, char *err,
                                 size_t errlen);
void jm_ynode_destroy (jm_ynode_t **self_p);

/* Map lookup; NULL if self is not a map or lacks key. */
const jm_ynode_t *jm_ynode_get (const jm_ynode_t *self, const char *key);
/* True for a plain scalar null (~, null, empty) */
bool jm_ynode_is_null (const jm_ynode_t *self);
/* A boolean: an unquoted YAML 1.1 word (true/yes/on, false/no/off, in
   lower, Title or UPPER case) or JSON true/false.  0 and *out set, or -1
   (not a boolean; *out untouched). */
int jm_ynode_bool (const jm_ynode_t *self, bool *out);

#endif
