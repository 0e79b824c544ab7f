/*  jm_batch_util.c - text and job id helpers the batch dialects share
    (declared in jm_batch.h). */
#include "jm_batch.h"

#include <ctype.h>
#include <string.h>

bool
jm_batch_next_line (const char **pos, const char **line, size_t *len)
{
    const char *p = *pos;
    if (!*p)
        return false;
    size_t l = strcspn (p, "\n");
    *line = p;
    *len = l;
    p += l;
    if (*p)
        p++;
    *pos = p;
    return true;
}

void
jm_batch_trim (const char **s, size_t *len)
{
    while (*len && isspace ((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace ((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

bool
jm_batch_all_digits (const char *s, size_t len)
{
    if (!len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isdigit ((unsigned char)s[i]))
            return false;
    return true;
}

bool
jm_batch_says (const char *text, const char *const *phrases)
{
    if (!text)
        return false;
    for (size_t i = 0; phrases[i]; i++)
        if (strstr (text, phrases[i]))
            return true;
    return false;
}

bool
jm_batch_base_is_new (const char *const *sids, size_t i, const char *stop, size_t *len)
{
    size_t l = strcspn (sids[i], stop);
    *len = l;
    for (size_t j = 0; j < i; j++)
        if (strcspn (sids[j], stop) == l && memcmp (sids[j], sids[i], l) == 0)
            return false;
    return true;
}

void
jm_batch_argv_add_bases (jm_argv_t *argv, const char *const *sids, size_t n, const char *stop)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        if (jm_batch_base_is_new (sids, i, stop, &len))
            jm_argv_addf (argv, "%.*s", (int)len, sids[i]);
    }
}

void
jm_batch_cancel_argv (const jm_batch_dialect_t *dialect, const char *const *sids, size_t n,
                      jm_argv_t *argv)
{
    jm_argv_add (argv, dialect->cancel_prog);
    for (size_t i = 0; i < n; i++)
        jm_argv_add (argv, sids[i]);
}
