/*  test_yaml.c - YAML/JSON to jm_ynode_t tree. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "jm_testutil.h"
#include "jm_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static jm_ynode_t *
s_load (const char *text, char *err, size_t errlen)
{
    return jm_yaml_load_string (text, strlen (text), "t.yml", err, errlen);
}

static void
test_tree (void **state)
{
    (void)state;
    char err[512] = "";
    const char *text = "# comment\n"
                       "name: hello\n"
                       "count: 12\n"
                       "list:\n"
                       "  - a\n"
                       "  - 'b c'\n"
                       "nested: {x: 1, y: [1, 2]}\n"
                       "nothing: ~\n"
                       "empty:\n"
                       "quoted_null: \"null\"\n";
    jm_ynode_t *root = s_load (text, err, sizeof (err));
    assert_non_null (root);
    assert_int_equal (root->type, JM_Y_MAP);
    assert_int_equal (root->n, 7);
    assert_string_equal (root->keys[0], "name");
    assert_int_equal (root->key_lines[0], 2);

    const jm_ynode_t *name = jm_ynode_get (root, "name");
    assert_non_null (name);
    assert_int_equal (name->type, JM_Y_SCALAR);
    assert_string_equal (name->value, "hello");
    assert_int_equal (name->line, 2);
    assert_int_equal (name->column, 7);
    assert_false (name->quoted);

    const jm_ynode_t *count = jm_ynode_get (root, "count");
    assert_string_equal (count->value, "12");
    assert_int_equal (count->line, 3);

    const jm_ynode_t *list = jm_ynode_get (root, "list");
    assert_int_equal (list->type, JM_Y_SEQ);
    assert_int_equal (list->n, 2);
    assert_string_equal (list->items[0]->value, "a");
    assert_int_equal (list->items[0]->line, 5);
    assert_int_equal (list->items[0]->column, 5);
    assert_string_equal (list->items[1]->value, "b c");
    assert_true (list->items[1]->quoted);
    assert_int_equal (list->items[1]->line, 6);

    const jm_ynode_t *nested = jm_ynode_get (root, "nested");
    assert_int_equal (nested->type, JM_Y_MAP);
    assert_string_equal (jm_ynode_get (nested, "x")->value, "1");
    const jm_ynode_t *y = jm_ynode_get (nested, "y");
    assert_int_equal (y->type, JM_Y_SEQ);
    assert_string_equal (y->items[1]->value, "2");
    assert_int_equal (y->line, 7);

    assert_true (jm_ynode_is_null (jm_ynode_get (root, "nothing")));
    assert_true (jm_ynode_is_null (jm_ynode_get (root, "empty")));
    assert_false (jm_ynode_is_null (jm_ynode_get (root, "quoted_null")));
    assert_false (jm_ynode_is_null (name));
    assert_false (jm_ynode_is_null (list));

    assert_null (jm_ynode_get (root, "missing"));
    assert_null (jm_ynode_get (list, "a"));
    jm_ynode_destroy (&root);
    assert_null (root);
}

static void
test_json (void **state)
{
    (void)state;
    char err[512] = "";
    const char *text = "{\n"
                       "  \"work_base\": \"runs\",\n"
                       "  \"forward_common_files\": [],\n"
                       "  \"resources\": {\"group_size\": 5, \"para_deg\": 1,\n"
                       "                \"custom_flags\": [], \"kwargs\": {}},\n"
                       "  \"task_list\": [\n"
                       "    {\"command\": \"echo hi > out\", \"task_work_path\": \"t0/\",\n"
                       "     \"forward_files\": [\"in.dat\"], \"backward_files\": [\"out\"],\n"
                       "     \"outlog\": \"log\", \"errlog\": \"err\"}\n"
                       "  ]\n"
                       "}\n";
    jm_ynode_t *root = s_load (text, err, sizeof (err));
    assert_non_null (root);
    assert_int_equal (root->type, JM_Y_MAP);
    assert_string_equal (jm_ynode_get (root, "work_base")->value, "runs");
    const jm_ynode_t *tl = jm_ynode_get (root, "task_list");
    assert_int_equal (tl->type, JM_Y_SEQ);
    assert_int_equal (tl->n, 1);
    assert_int_equal (tl->items[0]->line, 7);
    assert_string_equal (jm_ynode_get (tl->items[0], "command")->value, "echo hi > out");
    const jm_ynode_t *res = jm_ynode_get (root, "resources");
    assert_string_equal (jm_ynode_get (res, "group_size")->value, "5");
    assert_int_equal (jm_ynode_get (res, "kwargs")->type, JM_Y_MAP);
    assert_int_equal (jm_ynode_get (res, "kwargs")->n, 0);
    jm_ynode_destroy (&root);
}

static void
test_alias_refused (void **state)
{
    (void)state;
    char err[512] = "";
    jm_ynode_t *root = s_load ("a: &x 1\nb: *x\n", err, sizeof (err));
    assert_null (root);
    assert_non_null (strstr (err, "t.yml:1:"));
    assert_non_null (strstr (err, "not supported"));

    err[0] = 0;
    root = s_load ("base: &b {x: 1}\nother: *b\n", err, sizeof (err));
    assert_null (root);
    assert_non_null (strstr (err, "not supported"));
}

static void
test_bad_keys (void **state)
{
    (void)state;
    char err[512] = "";
    assert_null (s_load ("a: 1\nb: 2\na: 3\n", err, sizeof (err)));
    assert_string_equal (err, "t.yml:3:1: duplicate key 'a'");

    err[0] = 0;
    assert_null (s_load ("? [1, 2]\n: x\n", err, sizeof (err)));
    assert_non_null (strstr (err, "t.yml:1:"));
    assert_non_null (strstr (err, "map keys must be scalars"));
}

static void
test_syntax_error (void **state)
{
    (void)state;
    char err[512] = "";
    assert_null (s_load ("a: 1\nb: [1, 2\nc: 3\n", err, sizeof (err)));
    assert_non_null (strstr (err, "t.yml:"));
    /* libyaml's own problem text is passed through */
    assert_non_null (strstr (err, "expected"));
    int line = 0, col = 0;
    assert_int_equal (sscanf (err, "t.yml:%d:%d:", &line, &col), 2);
    assert_true (line >= 2);

    err[0] = 0;
    assert_null (s_load ("a: 1\n  b: 2\n", err, sizeof (err)));
    assert_int_equal (strncmp (err, "t.yml:2:", 8), 0);

    err[0] = 0;
    assert_null (s_load ("a: 1\n---\nb: 2\n", err, sizeof (err)));
    assert_non_null (strstr (err, "more than one document"));

    err[0] = 0;
    assert_null (s_load ("a: \"x\\0y\"\n", err, sizeof (err)));
    assert_non_null (strstr (err, "t.yml:1:4: NUL"));

    /* an empty file (or one with only comments) is a null document */
    jm_ynode_t *root = s_load ("# nothing\n", err, sizeof (err));
    assert_non_null (root);
    assert_true (jm_ynode_is_null (root));
    jm_ynode_destroy (&root);
}

static void
test_load_file (void **state)
{
    (void)state;
    char dir[256];
    assert_non_null (jm_test_tmpdir (dir, sizeof (dir), "yaml"));
    char path[300];
    snprintf (path, sizeof (path), "%s/c.yml", dir);
    jm_test_write (path, "x:\n  - 1\n  - [2\n");
    char err[512] = "";
    assert_null (jm_yaml_load_file (path, err, sizeof (err)));
    char prefix[320];
    snprintf (prefix, sizeof (prefix), "%s:", path);
    assert_int_equal (strncmp (err, prefix, strlen (prefix)), 0);

    jm_test_write (path, "x:\n  - 1\n  - 2\n");
    jm_ynode_t *root = jm_yaml_load_file (path, err, sizeof (err));
    assert_non_null (root);
    assert_int_equal (jm_ynode_get (root, "x")->items[1]->line, 3);
    jm_ynode_destroy (&root);

    unlink (path);
    err[0] = 0;
    assert_null (jm_yaml_load_file (path, err, sizeof (err)));
    assert_non_null (strstr (err, path));
    rmdir (dir);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_tree),          cmocka_unit_test (test_json),
        cmocka_unit_test (test_alias_refused), cmocka_unit_test (test_bad_keys),
        cmocka_unit_test (test_syntax_error),  cmocka_unit_test (test_load_file),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
