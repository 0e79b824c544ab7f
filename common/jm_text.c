/*  jm_text.c - a small growable string builder (see jm_text.h). */
#include "jm_text.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FIRST_CAP 256

/* Room for n more bytes and the NUL; false (and oom) if there is none. */
static bool
s_reserve (jm_text_t *self, size_t n)
{
    if (self->oom)
        return false;
    if (n > SIZE_MAX - 1 - self->len) {
        self->oom = true;
        return false;
    }
    size_t need = self->len + n + 1;
    if (need <= self->cap)
        return true;
    size_t cap = self->cap ? self->cap : S_FIRST_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc (self->buf, cap);
    if (!p) {
        self->oom = true;
        return false;
    }
    self->buf = p;
    self->cap = cap;
    return true;
}

void
jm_text_vadd (jm_text_t *self, const char *fmt, va_list ap)
{
    if (self->oom)
        return;
    va_list again;
    va_copy (again, ap);
    int n = vsnprintf (NULL, 0, fmt, ap);
    if (n >= 0 && s_reserve (self, (size_t)n)) {
        vsnprintf (self->buf + self->len, self->cap - self->len, fmt, again);
        self->len += (size_t)n;
    }
    else
        self->oom = true;
    va_end (again);
}

void
jm_text_add (jm_text_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    jm_text_vadd (self, fmt, ap);
    va_end (ap);
}

void
jm_text_put (jm_text_t *self, const void *data, size_t n)
{
    if (!s_reserve (self, n))
        return;
    if (n)
        memcpy (self->buf + self->len, data, n);
    self->len += n;
    self->buf[self->len] = '\0';
}

void
jm_text_puts (jm_text_t *self, const char *s)
{
    jm_text_put (self, s, strlen (s));
}

char *
jm_text_take (jm_text_t *self)
{
    char *text = NULL;
    if (!self->oom)
        text = self->buf ? self->buf : strdup ("");
    else
        free (self->buf);
    *self = (jm_text_t)JM_TEXT_INIT;
    return text;
}

void
jm_text_reset (jm_text_t *self)
{
    free (self->buf);
    *self = (jm_text_t)JM_TEXT_INIT;
}
