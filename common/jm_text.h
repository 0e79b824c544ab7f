/*  jm_text.h - a small growable string builder.

    A jm_text_t is a plain struct that starts as {0} (or JM_TEXT_INIT) and
    needs no constructor:

        jm_text_t t = JM_TEXT_INIT;
        jm_text_add (&t, "#SBATCH --nodes=%llu\n", nodes);
        jm_text_puts (&t, "exit 0\n");
        char *s = jm_text_take (&t);    // caller frees; NULL = out of memory

    buf always holds len bytes followed by a NUL once anything was added
    (NULL before).  Out of memory (or a format vsnprintf rejects) is sticky:
    oom becomes true, later adds do nothing, and jm_text_take frees the
    text and returns NULL, so a caller checks once, at the end, and reports
    the error its own way (or aborts, where it has no error path). */
#ifndef JM_TEXT_H
#define JM_TEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *buf;  /* the text, NUL-terminated; NULL until something is added */
    size_t len; /* bytes in buf, not counting the NUL */
    size_t cap; /* bytes allocated for buf */
    bool oom;   /* an add failed: the text is incomplete */
} jm_text_t;

#define JM_TEXT_INIT                                                                               \
    {                                                                                              \
        NULL, 0, 0, false                                                                          \
    }

/* Appends printf-style text. */
void jm_text_add (jm_text_t *self, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
void jm_text_vadd (jm_text_t *self, const char *fmt, va_list ap)
    __attribute__ ((format (printf, 2, 0)));
/* Appends n bytes of data (which should hold no NUL, or the text reads
   short). */
void jm_text_put (jm_text_t *self, const void *data, size_t n);
/* Appends the string s. */
void jm_text_puts (jm_text_t *self, const char *s);
/* The text (malloc'ed, "" when nothing was added; the caller frees it),
   or NULL if an add ran out of memory.  Either way self is reset to an
   empty builder, ready for reuse. */
char *jm_text_take (jm_text_t *self);
/* Frees the text and resets self to an empty builder. */
void jm_text_reset (jm_text_t *self);

#endif
