/*  test_resources.c - dpdispatcher's Resources: parsing, refusals, the
    JSON wire form, the header template and envs quoting (checked with the
    real bash). */
#define _GNU_SOURCE
#include "jm_resources.h"
#include "jm_util.h"
#include "jm_yaml.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka needs the headers above first */
#include <cmocka.h>

#include "jm_testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/*  Parses the `resources` map of a YAML document (line 1 is
    "resources:"), as the submission file "sub.yml" in jm_test_dir.  NULL + err. */
static jm_resources_t *
s_parse (const char *yaml, char **notices, char *err, size_t errlen)
{
    char yerr[512];
    jm_ynode_t *root = jm_yaml_load_string (yaml, strlen (yaml), "sub.yml", yerr, sizeof yerr);
    if (!root)
        fail_msg ("test YAML does not parse: %s", yerr);
    jm_resources_t *res = jm_resources_from_ynode (jm_ynode_get (root, "resources"), "sub.yml",
                                                   jm_test_dir, notices, err, errlen);
    jm_ynode_destroy (&root);
    return res;
}

static void
test_defaults (void **state)
{
    (void)state;
    jm_resources_t *res = jm_resources_new ();
    assert_int_equal (res->number_node, 1);
    assert_int_equal (res->cpu_per_node, 1);
    assert_int_equal (res->gpu_per_node, 0);
    assert_string_equal (res->queue_name, "");
    assert_int_equal (res->group_size, 1);
    assert_int_equal (res->para_deg, 1);
    assert_int_equal (res->custom_flags.n, 0);
    assert_int_equal (res->n_envs, 0);
    assert_false (res->module_purge);
    assert_null (res->header_template);
    assert_string_equal (res->custom_gpu_line, "");
    assert_string_equal (res->pe_name, "smp");
    assert_string_equal (res->job_name, "");
    assert_true (res->job_array);
    char *json = jm_resources_to_json (res);
    assert_string_equal (
        json, "{\"number_node\":1,\"cpu_per_node\":1,\"gpu_per_node\":0,\"queue_name\":\"\","
              "\"group_size\":1,\"para_deg\":1,\"custom_flags\":[],\"source_list\":[],"
              "\"module_purge\":false,\"module_unload_list\":[],\"module_list\":[],\"envs\":{},"
              "\"prepend_script\":[],\"append_script\":[],\"wait_time\":0,\"strategy\":{"
              "\"customized_script_header_template\":null},\"kwargs\":{\"custom_gpu_line\":\"\","
              "\"pe_name\":\"smp\",\"job_name\":\"\"},\"job_array\":true}");
    jm_resources_destroy (&res);
    assert_null (res);

    /* no resources map, an empty one and a null one: the same defaults */
    const char *docs[] = {"other: 1\n", "resources: {}\n", "resources:\n", "resources: ~\n"};
    for (size_t i = 0; i < 4; i++) {
        char err[512] = "", *notices = (char *)1;
        res = s_parse (docs[i], &notices, err, sizeof err);
        assert_non_null (res);
        assert_null (notices);
        char *j2 = jm_resources_to_json (res);
        assert_string_equal (j2, json);
        free (j2);
        jm_resources_destroy (&res);
    }
    /* the wire's "" means defaults too */
    char err[256];
    res = jm_resources_from_json ("", "JOB 1", err, sizeof err);
    assert_non_null (res);
    char *j3 = jm_resources_to_json (res);
    assert_string_equal (j3, json);
    free (j3);
    jm_resources_destroy (&res);
    free (json);
}

static void
test_every_field (void **state)
{
    (void)state;
    jm_test_write (jm_test_path (jm_test_dir, "header.tmpl"),
                   "#SBATCH -N {number_node} -c {cpu_per_node} -p {queue_name}\n"
                   "#SBATCH -J {job_name} # {{literal}}\n");
    const char *yaml = "resources:\n"
                       "  number_node: 2\n"
                       "  cpu_per_node: 8\n"
                       "  gpu_per_node: 1\n"
                       "  queue_name: debug\n"
                       "  group_size: 10\n"
                       "  para_deg: 3\n"
                       "  custom_flags: ['#SBATCH --mem=4G', '#SBATCH -t 0:01:00']\n"
                       "  source_list: [~/env.sh, /opt/x.sh]\n"
                       "  module_purge: true\n"
                       "  module_unload_list: [intel]\n"
                       "  module_list: [gcc/12, openmpi]\n"
                       "  envs: {OMP_NUM_THREADS: 4, PATH: \"/opt/x/bin:$PATH\", E: ''}\n"
                       "  prepend_script: ['ulimit -s unlimited', 'echo \"a;b\"']\n"
                       "  append_script: ['echo done']\n"
                       "  wait_time: 2\n"
                       "  strategy:\n"
                       "    customized_script_header_template_file: header.tmpl\n"
                       "  kwargs:\n"
                       "    custom_gpu_line: '#SBATCH --gres=gpu:1'\n"
                       "    pe_name: mpi\n"
                       "    job_name: myjob\n"
                       "  job_array: false\n";
    char err[512] = "", *notices = NULL;
    jm_resources_t *res = s_parse (yaml, &notices, err, sizeof err);
    if (!res)
        fail_msg ("%s", err);
    assert_null (notices);
    assert_int_equal (res->number_node, 2);
    assert_int_equal (res->cpu_per_node, 8);
    assert_int_equal (res->gpu_per_node, 1);
    assert_string_equal (res->queue_name, "debug");
    assert_int_equal (res->group_size, 10);
    assert_int_equal (res->para_deg, 3);
    assert_int_equal (res->custom_flags.n, 2);
    assert_string_equal (res->custom_flags.v[1], "#SBATCH -t 0:01:00");
    assert_int_equal (res->source_list.n, 2);
    assert_string_equal (res->source_list.v[0], "~/env.sh");
    assert_true (res->module_purge);
    assert_int_equal (res->module_unload_list.n, 1);
    assert_string_equal (res->module_unload_list.v[0], "intel");
    assert_int_equal (res->module_list.n, 2);
    assert_string_equal (res->module_list.v[1], "openmpi");
    assert_int_equal (res->n_envs, 3);
    assert_string_equal (res->envs[0].key, "OMP_NUM_THREADS");
    assert_string_equal (res->envs[0].value, "4");
    assert_string_equal (res->envs[1].key, "PATH");
    assert_string_equal (res->envs[1].value, "/opt/x/bin:$PATH");
    assert_string_equal (res->envs[2].value, "");
    assert_int_equal (res->prepend_script.n, 2);
    assert_string_equal (res->prepend_script.v[1], "echo \"a;b\"");
    assert_int_equal (res->append_script.n, 1);
    assert_int_equal (res->wait_time, 2);
    assert_non_null (res->header_template);
    assert_non_null (strstr (res->header_template, "{number_node}"));
    assert_string_equal (res->custom_gpu_line, "#SBATCH --gres=gpu:1");
    assert_string_equal (res->pe_name, "mpi");
    assert_string_equal (res->job_name, "myjob");
    assert_false (res->job_array);

    /* the template text (not the file name) travels, and comes back */
    char *json = jm_resources_to_json (res);
    assert_non_null (strstr (json, "\"customized_script_header_template\":\"#SBATCH -N "));
    assert_null (strstr (json, "header.tmpl"));
    jm_resources_t *back = jm_resources_from_json (json, "JOB 3", err, sizeof err);
    if (!back)
        fail_msg ("%s", err);
    assert_string_equal (back->header_template, res->header_template);
    char *filled = jm_resources_fill_template (back, "jm7", err, sizeof err);
    assert_non_null (filled);
    assert_string_equal (filled, "#SBATCH -N 2 -c 8 -p debug\n#SBATCH -J jm7 # {literal}\n");
    free (filled);
    /* dup is deep and equal */
    jm_resources_t *copy = jm_resources_dup (back);
    jm_resources_destroy (&back);
    char *json2 = jm_resources_to_json (copy);
    assert_string_equal (json2, json);
    free (json2);
    jm_resources_destroy (&copy);
    free (json);
    jm_resources_destroy (&res);
}

static void
test_notices (void **state)
{
    (void)state;
    const char *yaml = "resources:\n"
                       "  group_size: 2\n"
                       "  strategy:\n"
                       "    if_cuda_multi_devices: true\n"
                       "    ratio_unfinished: 0.1\n"
                       "  kwargs:\n"
                       "    gpu_usage: false\n"
                       "    gpu_new_syntax: false\n"
                       "    gpu_exclusive: true\n";
    char err[512] = "", *notices = NULL;
    jm_resources_t *res = s_parse (yaml, &notices, err, sizeof err);
    if (!res)
        fail_msg ("%s", err);
    assert_int_equal (res->group_size, 2);
    assert_non_null (notices);
    const char *want[] = {
        "sub.yml:4: resources.strategy.if_cuda_multi_devices: ",
        "sub.yml:5: resources.strategy.ratio_unfinished: ",
        "sub.yml:7: resources.kwargs.gpu_usage: ", "sub.yml:8: resources.kwargs.gpu_new_syntax: ",
        "sub.yml:9: resources.kwargs.gpu_exclusive: "};
    size_t lines = 0;
    for (const char *p = notices; *p; p++)
        lines += *p == '\n';
    assert_int_equal (lines, 5);
    for (size_t i = 0; i < 5; i++)
        assert_non_null (strstr (notices, want[i]));
    assert_non_null (strstr (notices, "ignored"));
    free (notices);
    jm_resources_destroy (&res);
    /* notices may be NULL */
    res = s_parse (yaml, NULL, err, sizeof err);
    assert_non_null (res);
    jm_resources_destroy (&res);
}

/* Each bad document is refused, naming file:line and the field. */
static void
test_refusals (void **state)
{
    (void)state;
    jm_test_write (jm_test_path (jm_test_dir, "bad.tmpl"), "#X {nodes}\n");
    jm_test_write (jm_test_path (jm_test_dir, "open.tmpl"), "#X {number_node\n");
    jm_test_write_bytes (jm_test_path (jm_test_dir, "bin.tmpl"), "#X \xff\xfe\n", 6);
    struct {
        const char *yaml;
        const char *want;
    } cases[] = {
        {"resources:\n  queue_name: 'a b'\n", "sub.yml:2: resources.queue_name: 'a b'"},
        {"resources:\n  queue_name: \"x\\ny\"\n", "sub.yml:2: resources.queue_name: 'x?y'"},
        {"resources:\n  queue_name: [a]\n", "sub.yml:2: resources.queue_name: must be a string"},
        {"resources:\n  number_node: 0\n", "sub.yml:2: resources.number_node: must be an integer"},
        {"resources:\n  number_node: -1\n", "sub.yml:2: resources.number_node: "},
        {"resources:\n  cpu_per_node: 1.5\n", "sub.yml:2: resources.cpu_per_node: "},
        {"resources:\n  cpu_per_node: '4'\n", "sub.yml:2: resources.cpu_per_node: "},
        {"resources:\n  gpu_per_node: 99999999999999999999999\n",
         "sub.yml:2: resources.gpu_per_node: "},
        {"resources:\n  group_size: 1000001\n", "sub.yml:2: resources.group_size: "},
        {"resources:\n  para_deg: {a: 1}\n", "sub.yml:2: resources.para_deg: "},
        {"resources:\n  wait_time: 86401\n", "sub.yml:2: resources.wait_time: "},
        {"resources:\n  module_purge: maybe\n", "sub.yml:2: resources.module_purge: must be true"},
        {"resources:\n  job_array: 'true'\n", "sub.yml:2: resources.job_array: "},
        {"resources:\n  custom_flags: '#SBATCH -t 1'\n",
         "sub.yml:2: resources.custom_flags: must be a list"},
        {"resources:\n  custom_flags:\n    - ok\n    - \"a\\nb\"\n",
         "sub.yml:4: resources.custom_flags[1]: must be one line"},
        {"resources:\n  source_list: ['']\n", "sub.yml:2: resources.source_list[0]: must not be"},
        {"resources:\n  source_list: [~]\n", "sub.yml:2: resources.source_list[0]: "},
        {"resources:\n  module_list: [[a]]\n", "sub.yml:2: resources.module_list[0]: "},
        {"resources:\n  module_unload_list: [\"a\\rb\"]\n",
         "sub.yml:2: resources.module_unload_list[0]: "},
        {"resources:\n  envs: [A]\n", "sub.yml:2: resources.envs: must be a map"},
        {"resources:\n  envs:\n    1A: x\n", "sub.yml:3: resources.envs.1A: "},
        {"resources:\n  envs:\n    A-B: x\n", "sub.yml:3: resources.envs.A-B: "},
        {"resources:\n  envs:\n    A: [x]\n", "sub.yml:3: resources.envs.A: must be a string"},
        {"resources:\n  prepend_script: 'x'\n", "sub.yml:2: resources.prepend_script: "},
        {"resources:\n  append_script: [{a: b}]\n", "sub.yml:2: resources.append_script[0]: "},
        {"resources:\n  strategy: [x]\n", "sub.yml:2: resources.strategy: must be a map"},
        {"resources:\n  strategy:\n    customized_script_header_template_file: nope.tmpl\n",
         "sub.yml:3: resources.strategy.customized_script_header_template_file: cannot open "
         "'nope.tmpl'"},
        {"resources:\n  strategy:\n    customized_script_header_template_file: bad.tmpl\n",
         "sub.yml:3: resources.strategy.customized_script_header_template_file: 'bad.tmpl': "
         "unknown placeholder '{nodes}'"},
        {"resources:\n  strategy:\n    customized_script_header_template_file: open.tmpl\n",
         "sub.yml:3: resources.strategy.customized_script_header_template_file: 'open.tmpl': "
         "unbalanced '{'"},
        {"resources:\n  strategy:\n    customized_script_header_template_file: bin.tmpl\n",
         "sub.yml:3: resources.strategy.customized_script_header_template_file: 'bin.tmpl' is "
         "not UTF-8"},
        {"resources:\n  strategy:\n    customized_script_header_template_file: .\n",
         "sub.yml:3: resources.strategy.customized_script_header_template_file: '.' is not a "
         "regular file"},
        {"resources:\n  strategy:\n    customized_script_header_template: '#X'\n",
         "sub.yml:3: resources.strategy: unknown key 'customized_script_header_template' (known: "
         "customized_script_header_template_file)"},
        {"resources:\n  strategy:\n    foo: 1\n", "sub.yml:3: resources.strategy: unknown key"},
        {"resources:\n  kwargs: 3\n", "sub.yml:2: resources.kwargs: must be a map"},
        {"resources:\n  kwargs:\n    pe_name: 'smp; rm'\n",
         "sub.yml:3: resources.kwargs.pe_name: "},
        {"resources:\n  kwargs:\n    pe_name: ''\n", "sub.yml:3: resources.kwargs.pe_name: "},
        {"resources:\n  kwargs:\n    job_name: a/b\n", "sub.yml:3: resources.kwargs.job_name: "},
        {"resources:\n  kwargs:\n    custom_gpu_line: \"a\\nb\"\n",
         "sub.yml:3: resources.kwargs.custom_gpu_line: must be one line"},
        {"resources:\n  kwargs:\n    bar: 1\n",
         "sub.yml:3: resources.kwargs: unknown key 'bar' (known: custom_gpu_line, pe_name, "
         "job_name)"},
        {"resources:\n  group_size: 1\n  cpu_number: 4\n",
         "sub.yml:3: resources: unknown key 'cpu_number' (known: number_node, cpu_per_node, "
         "gpu_per_node, queue_name, group_size, para_deg, custom_flags, source_list, "
         "module_purge, module_unload_list, module_list, envs, prepend_script, append_script, "
         "wait_time, strategy, kwargs, job_array)"},
        {"resources: [1, 2]\n", "sub.yml:1: resources: must be a map"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[1024] = "";
        char *notices = NULL;
        jm_resources_t *res = s_parse (cases[i].yaml, &notices, err, sizeof err);
        if (res)
            fail_msg ("case %zu accepted: %s", i, cases[i].yaml);
        assert_null (notices);
        if (!strstr (err, cases[i].want))
            fail_msg ("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
    }
    /* an over-long (but valid) resources map cannot travel */
    size_t n = 300000;
    char *big = malloc (n + 64);
    assert_non_null (big);
    strcpy (big, "resources:\n  prepend_script: ['");
    size_t len = strlen (big);
    memset (big + len, 'x', n);
    strcpy (big + len + n, "']\n");
    char err[1024] = "";
    jm_resources_t *res = s_parse (big, NULL, err, sizeof err);
    assert_null (res);
    if (!strstr (err, "sub.yml:2: resources: "))
        fail_msg ("%s", err);
    assert_non_null (strstr (err, "JSON"));
    free (big);
}

/* Strings that are awkward in JSON and YAML survive the wire unchanged. */
static void
test_json_round_trip (void **state)
{
    (void)state;
    const char *yaml =
        "resources:\n"
        "  queue_name: 'q.1+x@y%z:w-_'\n"
        "  custom_flags: [\"#X \\\"q\\\" \\\\ back\\tslash\", \"\\x01\\x7f\\u0080\\u0085\\u00a0"
        "\\ufeff\\uffff\\U0001F600 \\u00e9\\u2028\\u2029\", \"{not a json: [x]}, 'single'\"]\n"
        "  envs: {A: \"$HOME/${X} `id` $(id) \\\" \\\\\", B: \"line1\\nline2\\r\"}\n"
        "  prepend_script: [\"echo 'a' \\\"b\\\"; x=$((1+2))\", \"multi\\nline\", \"\"]\n"
        "  append_script: ['null', '~', 'true', '1', '']\n"
        "  kwargs: {custom_gpu_line: '#SBATCH --gres=gpu:2 \\u', job_name: jm-1}\n";
    char err[512] = "";
    jm_resources_t *res = s_parse (yaml, NULL, err, sizeof err);
    if (!res)
        fail_msg ("%s", err);
    assert_string_equal (res->custom_flags.v[0], "#X \"q\" \\ back\tslash");
    assert_string_equal (res->append_script.v[0], "null");
    char *j1 = jm_resources_to_json (res);
    jm_resources_t *back =
        jm_resources_from_json (j1, "JOB 9 from the coordinator", err, sizeof err);
    if (!back)
        fail_msg ("%s (json: %s)", err, j1);
    char *j2 = jm_resources_to_json (back);
    assert_string_equal (j1, j2);
    /* the values themselves, not only their JSON */
    assert_int_equal (back->custom_flags.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal (back->custom_flags.v[i], res->custom_flags.v[i]);
    assert_int_equal (back->n_envs, 2);
    assert_string_equal (back->envs[1].value, "line1\nline2\r");
    assert_string_equal (back->append_script.v[0], "null");
    assert_string_equal (back->append_script.v[1], "~");
    assert_string_equal (back->append_script.v[4], "");
    assert_null (back->header_template);
    /* what JSON writers other than ours produce reads the same */
    const char *pretty = "{ \"number_node\" : 3,\n  \"envs\": {\"X\": \"a\\/b\\u00e9\"},\n"
                         "  \"queue_name\": \"debug\" }";
    jm_resources_t *p = jm_resources_from_json (pretty, "test", err, sizeof err);
    if (!p)
        fail_msg ("%s", err);
    assert_int_equal (p->number_node, 3);
    assert_string_equal (p->envs[0].value, "a/b\xc3\xa9");
    jm_resources_destroy (&p);
    free (j1);
    free (j2);
    jm_resources_destroy (&back);
    jm_resources_destroy (&res);

    /* to_json (from_json (to_json (x))) == to_json (x) for a struct built
       by hand, with bytes libyaml never hands out (invalid UTF-8) */
    jm_resources_t *h = jm_resources_new ();
    free (h->queue_name);
    h->queue_name = strdup ("q");
    h->header_template = strdup ("#H {job_name} {{x}}\n\x01\x1f\"\\");
    h->custom_flags.v = calloc (1, sizeof (char *));
    h->custom_flags.v[0] = strdup ("bad \xff\xc3 utf8");
    h->custom_flags.n = 1;
    h->wait_time = 86400;
    h->number_node = 1000000;
    char *hj = jm_resources_to_json (h);
    jm_resources_t *hb = jm_resources_from_json (hj, "test", err, sizeof err);
    if (!hb)
        fail_msg ("%s (json: %s)", err, hj);
    char *hj2 = jm_resources_to_json (hb);
    jm_resources_t *hb2 = jm_resources_from_json (hj2, "test", err, sizeof err);
    assert_non_null (hb2);
    char *hj3 = jm_resources_to_json (hb2);
    assert_string_equal (hj2, hj3);
    assert_string_equal (hb->header_template, h->header_template);
    assert_string_equal (hb->custom_flags.v[0], "bad \xef\xbf\xbd\xef\xbf\xbd utf8");
    free (hj);
    free (hj2);
    free (hj3);
    jm_resources_destroy (&hb);
    jm_resources_destroy (&hb2);
    jm_resources_destroy (&h);
}

/* What a hostile or broken coordinator might send is refused cleanly. */
static void
test_hostile_json (void **state)
{
    (void)state;
    struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"[1,2]", "JOB 5: resources: must be a map"},
        {"\"x\"", "JOB 5: resources: must be a map"},
        {"{\"number_node\":\"4\"}", "JOB 5: resources.number_node: must be an integer"},
        {"{\"number_node\":1e3}", "JOB 5: resources.number_node: "},
        {"{\"number_node\":-5}", "JOB 5: resources.number_node: "},
        {"{\"number_node\":18446744073709551617}", "JOB 5: resources.number_node: "},
        {"{\"number_node\":99999999999999999999999999999999999999999}",
         "JOB 5: resources.number_node: "},
        {"{\"cpu_per_node\":true}", "JOB 5: resources.cpu_per_node: "},
        {"{\"cpu_per_node\":[]}", "JOB 5: resources.cpu_per_node: "},
        {"{\"queue_name\":{}}", "JOB 5: resources.queue_name: must be a string"},
        {"{\"queue_name\":\"a;b\"}", "JOB 5: resources.queue_name: 'a;b'"},
        {"{\"queue_name\":\"\\u0000\"}", "JOB 5: resources are not valid JSON"},
        {"{\"module_purge\":\"yes\"}", "JOB 5: resources.module_purge: "},
        {"{\"module_purge\":1}", "JOB 5: resources.module_purge: "},
        {"{\"custom_flags\":\"#X\"}", "JOB 5: resources.custom_flags: must be a list"},
        {"{\"custom_flags\":[1, [2]]}", "JOB 5: resources.custom_flags[1]: "},
        {"{\"custom_flags\":[\"a\\nb\"]}", "JOB 5: resources.custom_flags[0]: "},
        {"{\"source_list\":[null]}", "JOB 5: resources.source_list[0]: "},
        {"{\"envs\":{\"$(id)\":\"x\"}}", "JOB 5: resources.envs.$(id): "},
        {"{\"envs\":{\"A\":{\"b\":1}}}", "JOB 5: resources.envs.A: "},
        {"{\"envs\":[]}", "JOB 5: resources.envs: must be a map"},
        {"{\"strategy\":{\"customized_script_header_template_file\":\"/etc/passwd\"}}",
         "JOB 5: resources.strategy: unknown key 'customized_script_header_template_file'"},
        {"{\"strategy\":{\"customized_script_header_template\":\"{evil}\"}}",
         "JOB 5: resources.strategy.customized_script_header_template: unknown placeholder"},
        {"{\"strategy\":{\"customized_script_header_template\":[\"x\"]}}",
         "JOB 5: resources.strategy.customized_script_header_template: must be a string"},
        {"{\"strategy\":7}", "JOB 5: resources.strategy: must be a map"},
        {"{\"kwargs\":{\"pe_name\":\"a b\"}}", "JOB 5: resources.kwargs.pe_name: "},
        {"{\"kwargs\":{\"gpu_usage\":true}}", "JOB 5: resources.kwargs: unknown key 'gpu_usage'"},
        {"{\"batch_type\":\"Slurm\"}", "JOB 5: resources: unknown key 'batch_type'"},
        {"{\"job_array\":null, \"evil\":1}", "JOB 5: resources: unknown key 'evil'"},
        {"{\"number_node\":1", "JOB 5: resources are not valid JSON"},
        {"{\"a\":1}{\"b\":2}", "JOB 5: resources are not valid JSON"},
        {"{\"number_node\":1, \"number_node\":2}", "JOB 5: resources are not valid JSON"},
        {"{\"a\": &x 1}", "JOB 5: resources are not valid JSON"},
        {"{\"x\":\"\xff\"}", "JOB 5: resources are not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[1024] = "";
        jm_resources_t *res = jm_resources_from_json (cases[i].json, "JOB 5", err, sizeof err);
        if (res)
            fail_msg ("case %zu accepted: %s", i, cases[i].json);
        if (!strstr (err, cases[i].want))
            fail_msg ("case %zu: error '%s' lacks '%s'", i, err, cases[i].want);
    }
    /* deep nesting and a huge text */
    char deep[4096] = "{\"envs\":";
    for (int i = 0; i < 1000; i++)
        strcat (deep, "[");
    char err[1024] = "";
    assert_null (jm_resources_from_json (deep, "JOB 5", err, sizeof err));
    assert_non_null (strstr (err, "JOB 5"));
    size_t n = 300000;
    char *big = malloc (n + 64);
    assert_non_null (big);
    strcpy (big, "{\"queue_name\":\"");
    memset (big + strlen (big), 'a', n);
    strcpy (big + 15 + n, "\"}");
    assert_null (jm_resources_from_json (big, "JOB 5", err, sizeof err));
    assert_non_null (strstr (err, "JOB 5: resources: "));
    free (big);
    /* a long queue name within the text limit: the name rule */
    char longq[400];
    snprintf (longq, sizeof longq, "{\"queue_name\":\"%0200d\"}", 0);
    assert_null (jm_resources_from_json (longq, "JOB 5", err, sizeof err));
    assert_non_null (strstr (err, "JOB 5: resources.queue_name: "));
}

static void
test_template_fill (void **state)
{
    (void)state;
    jm_resources_t *res = jm_resources_new ();
    res->number_node = 2;
    res->cpu_per_node = 16;
    res->gpu_per_node = 4;
    res->group_size = 5;
    res->para_deg = 3;
    free (res->queue_name);
    res->queue_name = strdup ("gpu");
    free (res->pe_name);
    res->pe_name = strdup ("mpi");
    free (res->job_name);
    res->job_name = strdup ("mine");
    char err[512] = "";
    /* no template */
    assert_null (jm_resources_fill_template (res, "x", err, sizeof err));
    res->header_template =
        strdup ("#$ -pe {pe_name} {cpu_per_node}\n#N={number_node} G={gpu_per_node} "
                "Q={queue_name} S={group_size} P={para_deg} J={job_name}\n{{}} }}{{ {{x}}\n");
    char *t = jm_resources_fill_template (res, "jm12", err, sizeof err);
    assert_non_null (t);
    assert_string_equal (t, "#$ -pe mpi 16\n#N=2 G=4 Q=gpu S=5 P=3 J=jm12\n{} }{ {x}\n");
    free (t);
    /* job_name NULL: the resources' own */
    t = jm_resources_fill_template (res, NULL, err, sizeof err);
    assert_non_null (strstr (t, "J=mine"));
    free (t);
    struct {
        const char *tmpl;
        const char *want;
    } bad[] = {
        {"#X {nodes}", "unknown placeholder '{nodes}'"},
        {"#X {number_node:>4}", "unknown placeholder '{number_node:>4}'"},
        {"#X {}", "unknown placeholder '{}'"},
        {"#X {0}", "unknown placeholder '{0}'"},
        {"#X {number_node", "unbalanced '{' at byte 3"},
        {"#X {a{b}}", "unbalanced '{' at byte 3"},
        {"#X }", "single '}' at byte 3"},
        {"{{{", "unbalanced '{' at byte 2"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        free (res->header_template);
        res->header_template = strdup (bad[i].tmpl);
        err[0] = 0;
        char *r = jm_resources_fill_template (res, "j", err, sizeof err);
        if (r)
            fail_msg ("case %zu filled: %s", i, r);
        if (!strstr (err, bad[i].want))
            fail_msg ("case %zu: error '%s' lacks '%s'", i, err, bad[i].want);
    }
    jm_resources_destroy (&res);
}

/*  Runs `export X=<quoted>; printf %s "$X"` with the real bash in jm_test_dir
    (HOME=/home/jmtest, Y=why) and returns what it printed. */
static char *
s_bash_export (const char *value)
{
    char *q = jm_resources_env_quote (value);
    char script[8192];
    snprintf (script, sizeof script, "export X=%s\nprintf %%s \"$X\" > out\n", q);
    free (q);
    jm_test_write (jm_test_path (jm_test_dir, "env.sh"), script);
    char cmd[1024];
    snprintf (cmd, sizeof cmd,
              "cd '%s' && rm -f out && env -i HOME=/home/jmtest Y=why PATH=/usr/bin:/bin "
              "timeout 10 /bin/bash ./env.sh",
              jm_test_dir);
    int rc = system (cmd);
    assert_true (WIFEXITED (rc));
    assert_int_equal (WEXITSTATUS (rc), 0);
    return jm_test_read (jm_test_path (jm_test_dir, "out"), NULL);
}

static void
test_env_quote_bash (void **state)
{
    (void)state;
    struct {
        const char *value;
        const char *want;
    } cases[] = {
        {"plain", "plain"},
        {"$HOME/bin:${HOME}/x:$Y", "/home/jmtest/bin:/home/jmtest/x:why"},
        {"${Y}_$Y_", "why_"}, /* $Y_ is the variable Y_ (unset), as bash reads it */
        {"$(touch pwned1)", "$(touch pwned1)"},
        {"`touch pwned2`", "`touch pwned2`"},
        {"a\"; touch pwned3; echo \"", "a\"; touch pwned3; echo \""},
        {"x; touch pwned4", "x; touch pwned4"},
        {"\\\"$(touch pwned5)\\", "\\\"$(touch pwned5)\\"},
        {"${Y:-$(touch pwned6)}", "${Y:-$(touch pwned6)}"},
        {"${Y", "${Y"},
        {"$((1+2)) $1 $? $$ $ $", "$((1+2)) $1 $? $$ $ $"},
        {"it's 'quoted' !x", "it's 'quoted' !x"},
        {"line1\nline2", "line1\nline2"},
        {"", ""},
        {"trailing\\", "trailing\\"},
        {"$", "$"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out = s_bash_export (cases[i].value);
        assert_non_null (out);
        if (strcmp (out, cases[i].want) != 0)
            fail_msg ("case %zu: bash gave '%s', want '%s'", i, out, cases[i].want);
        free (out);
    }
    /* no command ran */
    for (int i = 1; i <= 6; i++) {
        char name[32];
        snprintf (name, sizeof name, "pwned%d", i);
        assert_int_equal (access (jm_test_path (jm_test_dir, name), F_OK), -1);
    }
    char *q = jm_resources_env_quote ("$HOME `x` \"y\" \\z $(w)");
    assert_string_equal (q, "\"$HOME \\`x\\` \\\"y\\\" \\\\z \\$(w)\"");
    free (q);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_defaults, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_every_field, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_notices, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_refusals, jm_test_dir_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_json_round_trip, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_hostile_json, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_template_fill, jm_test_dir_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_env_quote_bash, jm_test_dir_setup,
                                         jm_test_dir_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
