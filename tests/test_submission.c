/*  test_submission.c - dpdispatcher-style submission files: loading,
    validation errors a user would hit, and the SUBMIT message. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "jm_sha256.h"
#include "jm_store.h"
#include "jm_submission.h"
#include "jm_testutil.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_work[300]; /* --work-dir */
static char s_runs[300]; /* work_dir/runs (work_base) */
static char s_subfile[300];

static char *
s_path (const char *rel)
{
    return jm_test_path (jm_test_dir, rel);
}

static int
s_setup (void **state)
{
    if (jm_test_dir_setup (state) != 0) /* the temp root */
        return -1;
    snprintf (s_work, sizeof s_work, "%s/work", jm_test_dir);
    snprintf (s_runs, sizeof s_runs, "%s/work/runs", jm_test_dir);
    snprintf (s_subfile, sizeof s_subfile, "%s/sub.yml", jm_test_dir);
    mkdir (s_work, 0755);
    mkdir (s_runs, 0755);
    mkdir (s_path ("work/runs/t0"), 0755);
    mkdir (s_path ("work/runs/t1"), 0755);
    jm_test_write (s_path ("work/runs/common.dat"), "shared input\n");
    jm_test_write (s_path ("work/runs/t0/in.dat"), "task zero\n");
    jm_test_write (s_path ("work/runs/t1/in.dat"), "task one\n");
    jm_test_write (s_path ("work/runs/t1/empty"), "");
    jm_test_write (s_path ("secret"), "outside the work base\n");
    return 0;
}

static jm_submission_t *
s_load_text (const char *text, char *err, size_t errlen)
{
    jm_test_write (s_subfile, text);
    return jm_submission_load (s_subfile, s_work, err, errlen);
}

static const char *s_valid_yaml = "work_base: runs\n"
                                  "forward_common_files: [common.dat]\n"
                                  "backward_common_files: [summary.txt]\n"
                                  "resources:\n"
                                  "  number_node: 1\n"
                                  "  cpu_per_node: 4\n"
                                  "  gpu_per_node: 0\n"
                                  "  queue_name: cpu\n"
                                  "  group_size: 10\n"
                                  "  para_deg: 2\n"
                                  "  custom_flags: ['#SBATCH --time=1:00:00']\n"
                                  "  source_list: [/opt/env.sh]\n"
                                  "  module_list: [gcc]\n"
                                  "  envs: {OMP_NUM_THREADS: 4}\n"
                                  "  kwargs: {}\n"
                                  "  strategy: {if_cuda_multi_devices: false}\n"
                                  "task_list:\n"
                                  "  - command: \"cat in.dat > out.dat\"\n"
                                  "    task_work_path: t0\n"
                                  "    forward_files: [in.dat]\n"
                                  "    backward_files: [out.dat, '*.log']\n"
                                  "  - command: run --fast\n"
                                  "    task_work_path: t1/\n"
                                  "    forward_files: [in.dat, empty]\n"
                                  "    backward_files: []\n"
                                  "    outlog: out.txt\n"
                                  "    errlog: err.txt\n"
                                  "    task_need_resources: 1\n";

static void
s_check_valid (jm_submission_t *s)
{
    char want[PATH_MAX];
    assert_non_null (realpath (s_runs, want));
    assert_string_equal (s->work_base, "runs");
    assert_string_equal (s->work_base_abs, want);
    assert_int_equal (s->group_size, 10);
    assert_int_equal (s->para_deg, 2);
    assert_int_equal (s->n_forward_common, 1);
    assert_string_equal (s->forward_common_files[0], "common.dat");
    assert_int_equal (s->n_backward_common, 1);
    assert_string_equal (s->backward_common_files[0], "summary.txt");
    assert_int_equal (s->n_tasks, 2);
    jm_task_spec_t *t = &s->tasks[0];
    assert_string_equal (t->command, "cat in.dat > out.dat");
    assert_string_equal (t->task_work_path, "t0");
    assert_int_equal (t->n_forward, 1);
    assert_string_equal (t->forward_files[0], "in.dat");
    assert_int_equal (t->n_backward, 2);
    assert_string_equal (t->backward_files[1], "*.log");
    assert_string_equal (t->outlog, "log");
    assert_string_equal (t->errlog, "err");
    t = &s->tasks[1];
    assert_string_equal (t->command, "run --fast");
    assert_string_equal (t->task_work_path, "t1/");
    assert_int_equal (t->n_forward, 2);
    assert_int_equal (t->n_backward, 0);
    assert_string_equal (t->outlog, "out.txt");
    assert_string_equal (t->errlog, "err.txt");
}

static void
test_valid_yaml (void **state)
{
    (void)state;
    char err[2048] = "";
    jm_submission_t *s = s_load_text (s_valid_yaml, err, sizeof err);
    if (!s)
        fail_msg ("%s", err);
    assert_string_equal (s->file, s_subfile);
    s_check_valid (s);
    /* the resources map, in full */
    assert_non_null (s->resources);
    assert_int_equal (s->resources->cpu_per_node, 4);
    assert_string_equal (s->resources->queue_name, "cpu");
    assert_int_equal (s->resources->custom_flags.n, 1);
    assert_string_equal (s->resources->source_list.v[0], "/opt/env.sh");
    assert_string_equal (s->resources->module_list.v[0], "gcc");
    assert_int_equal (s->resources->n_envs, 1);
    assert_string_equal (s->resources->envs[0].value, "4");
    /* if_cuda_multi_devices is accepted, with a notice naming it */
    char want[PATH_MAX + 64];
    snprintf (want, sizeof want, "%s:16: resources.strategy.if_cuda_multi_devices: ", s_subfile);
    assert_non_null (s->notices);
    if (!strstr (s->notices, want))
        fail_msg ("notices '%s' lack '%s'", s->notices, want);
    jm_submission_destroy (&s);
    assert_null (s);
}

static void
test_valid_json (void **state)
{
    (void)state;
    char err[2048] = "";
    /* the shape dpdispatcher's submission.json has, machine included */
    const char *json =
        "{\n"
        "  \"work_base\": \"runs\",\n"
        "  \"forward_common_files\": [\"common.dat\"],\n"
        "  \"backward_common_files\": [\"summary.txt\"],\n"
        "  \"machine\": {\"batch_type\": \"Slurm\", \"context_type\": \"SSHContext\",\n"
        "              \"local_root\": \"./\", \"remote_root\": \"/scratch\"},\n"
        "  \"resources\": {\"number_node\": 1, \"cpu_per_node\": 4, \"gpu_per_node\": 0,\n"
        "                \"queue_name\": \"cpu\", \"group_size\": 10, \"para_deg\": 2,\n"
        "                \"custom_flags\": [], \"module_purge\": false,\n"
        "                \"prepend_script\": [], \"append_script\": [], \"wait_time\": 0,\n"
        "                \"batch_type\": \"Slurm\", \"kwargs\": null},\n"
        "  \"task_list\": [\n"
        "    {\"command\": \"cat in.dat > out.dat\", \"task_work_path\": \"t0\",\n"
        "     \"forward_files\": [\"in.dat\"], \"backward_files\": [\"out.dat\", \"*.log\"],\n"
        "     \"outlog\": \"log\", \"errlog\": \"err\"},\n"
        "    {\"command\": \"run --fast\", \"task_work_path\": \"t1/\",\n"
        "     \"forward_files\": [\"in.dat\", \"empty\"], \"backward_files\": [],\n"
        "     \"outlog\": \"out.txt\", \"errlog\": \"err.txt\"}\n"
        "  ]\n"
        "}\n";
    jm_submission_t *s = s_load_text (json, err, sizeof err);
    if (!s)
        fail_msg ("%s", err);
    s_check_valid (s);
    assert_string_equal (s->resources->queue_name, "cpu");
    assert_non_null (strstr (s->notices, "resources.batch_type: "));
    jm_submission_destroy (&s);
}

static void
test_defaults (void **state)
{
    (void)state;
    char err[2048] = "";
    /* no work_dir: relative to the current directory */
    char cwd[PATH_MAX];
    assert_non_null (getcwd (cwd, sizeof cwd));
    assert_int_equal (chdir (s_runs), 0);
    jm_test_write (s_subfile, "task_list:\n"
                              "  - command: echo hi\n"
                              "    task_work_path: ./\n"
                              "  - command: echo 000\n"
                              "    task_work_path: 000\n"
                              "    outlog:\n");
    jm_submission_t *s = jm_submission_load (s_subfile, NULL, err, sizeof err);
    assert_int_equal (chdir (cwd), 0);
    if (!s)
        fail_msg ("%s", err);
    char want[PATH_MAX];
    assert_non_null (realpath (s_runs, want));
    assert_string_equal (s->work_base, ".");
    assert_string_equal (s->work_base_abs, want);
    assert_int_equal (s->group_size, 1);
    assert_int_equal (s->para_deg, 1);
    assert_non_null (s->resources); /* defaults, never NULL */
    assert_int_equal (s->resources->cpu_per_node, 1);
    assert_null (s->notices);
    assert_int_equal (s->n_forward_common, 0);
    assert_int_equal (s->n_backward_common, 0);
    assert_int_equal (s->n_tasks, 2);
    assert_string_equal (s->tasks[0].task_work_path, "./");
    assert_int_equal (s->tasks[0].n_forward, 0);
    assert_int_equal (s->tasks[0].n_backward, 0);
    assert_string_equal (s->tasks[0].outlog, "log");
    assert_string_equal (s->tasks[0].errlog, "err");
    /* a number where a path is expected is its text */
    assert_string_equal (s->tasks[1].task_work_path, "000");
    assert_string_equal (s->tasks[1].outlog, "log");
    jm_submission_destroy (&s);
}

/*  The submission must be refused with an error that starts with
    "<file>:<line>:" and contains want. */
static void
s_expect_error (const char *text, int line, const char *want)
{
    char err[4096] = "", prefix[PATH_MAX];
    jm_submission_t *s = s_load_text (text, err, sizeof err);
    if (s) {
        jm_submission_destroy (&s);
        fail_msg ("accepted, expected error '%s' for:\n%s", want, text);
    }
    snprintf (prefix, sizeof prefix, "%s:%d:", s_subfile, line);
    if (getenv ("JM_TEST_VERBOSE"))
        fprintf (stderr, "%s\n", err);
    if (strncmp (err, prefix, strlen (prefix)) != 0 || !strstr (err, want))
        fail_msg ("error '%s'\n does not start with '%s' and contain '%s'", err, prefix, want);
}

#define TASK0 "task_list:\n  - command: x\n    task_work_path: t0\n"

static void
test_errors (void **state)
{
    (void)state;
    s_expect_error ("work_base: runs\n", 1, "task_list is missing");
    s_expect_error ("work_base: runs\ntask_list: []\n", 2, "non-empty list");
    s_expect_error ("- a\n- b\n", 1, "must be a map");
    s_expect_error ("work_base: runs\n"
                    "task_list:\n"
                    "  - task_work_path: t0\n",
                    3, "task_list[0].command: required but missing");
    s_expect_error ("work_base: runs\n"
                    "task_list:\n"
                    "  - command: ''\n"
                    "    task_work_path: t0\n",
                    3, "task_list[0].command: empty command");
    s_expect_error ("work_base: runs\n"
                    "task_list:\n"
                    "  - command: x\n",
                    3, "task_list[0].task_work_path: required");
    s_expect_error ("work_base: runs\nforward_comon_files: [common.dat]\n" TASK0, 2,
                    "unknown key 'forward_comon_files'");
    s_expect_error ("work_base: runs\n" TASK0 "    forward_file: [in.dat]\n", 5,
                    "task_list[0]: unknown key 'forward_file'");
    s_expect_error ("work_base: runs\n"
                    "task_list:\n"
                    "  - command: x\n"
                    "    task_work_path: t0\n"
                    "  - command: y\n"
                    "    task_work_path: ../outside\n",
                    6, "task_list[1].task_work_path: '../outside' leaves");
    s_expect_error ("work_base: runs\n" TASK0 "    forward_files: [in.dat, /etc/passwd]\n", 5,
                    "task_list[0].forward_files[1]: '/etc/passwd' is an absolute path");
    s_expect_error (
        "work_base: runs\nforward_common_files:\n  - common.dat\n  - t0/../../x\n" TASK0, 4,
        "forward_common_files[1]: 't0/../../x' leaves");
    s_expect_error ("work_base: runs\nbackward_common_files: ['../*.out']\n" TASK0, 2,
                    "backward_common_files[0]:");
    s_expect_error ("work_base: runs\n" TASK0 "    outlog: ../log\n", 5, "task_list[0].outlog:");
    s_expect_error ("work_base: runs\n"
                    "task_list:\n"
                    "  - command: x\n"
                    "    task_work_path: t0\n"
                    "  - command: y\n"
                    "    task_work_path: t1\n"
                    "    forward_files:\n"
                    "      - in.dat\n"
                    "      - nothere.dat\n",
                    9, "task_list[1].forward_files[1]: cannot open 'nothere.dat'");
    s_expect_error ("work_base: runs\nforward_common_files: [missing.dat]\n" TASK0, 2,
                    "forward_common_files[0]: cannot open 'missing.dat'");
    s_expect_error ("work_base: runs\n"
                    "task_list:\n"
                    "  - command: x\n"
                    "    task_work_path: t9\n"
                    "    forward_files: [in.dat]\n",
                    4, "task_list[0].task_work_path: cannot open 't9'");
    s_expect_error ("work_base: runs\nresources: {group_size: ten}\n" TASK0, 2,
                    "resources.group_size: must be an integer");
    s_expect_error ("work_base: runs\nresources: {group_size: 2.5}\n" TASK0, 2,
                    "resources.group_size: must be an integer");
    s_expect_error ("work_base: runs\nresources:\n  para_deg: 0\n" TASK0, 3,
                    "resources.para_deg: must be an integer from 1");
    s_expect_error ("work_base: runs\nresources: {group_size: 1000001}\n" TASK0, 2,
                    "resources.group_size");
    s_expect_error ("work_base: runs\nresources: [1]\n" TASK0, 2, "resources: must be a map");
    s_expect_error ("work_base: runs\nresources:\n  group_size: 2\n  queue_name: 'a b'\n" TASK0, 4,
                    "resources.queue_name: 'a b'");
    s_expect_error ("work_base: runs\nresources:\n  cpu_number: 4\n" TASK0, 3,
                    "resources: unknown key 'cpu_number' (known: number_node, ");
    s_expect_error ("work_base: runs\nresources:\n  envs: {'A B': 1}\n" TASK0, 3,
                    "resources.envs.A B: ");
    s_expect_error ("work_base: runs\nresources:\n  strategy:\n"
                    "    customized_script_header_template_file: nope.tmpl\n" TASK0,
                    4, "resources.strategy.customized_script_header_template_file: cannot open");
    s_expect_error ("work_base: nowhere\n" TASK0, 1, "work_base: ");
    s_expect_error ("work_base: /tmp\n" TASK0, 1, "work_base: '/tmp' is an absolute path");
    s_expect_error ("work_base: ../work\n" TASK0, 1, "work_base: '../work' leaves");
    s_expect_error ("work_base: runs\n" TASK0 "    forward_files: in.dat\n", 5,
                    "task_list[0].forward_files: must be a list of strings");
    s_expect_error ("work_base: runs\n" TASK0 "    command: y\n", 5, "duplicate key 'command'");
    s_expect_error ("work_base: runs\ntask_list:\n  - just a string\n", 3,
                    "task_list[0]: must be a map");
    s_expect_error ("work_base: runs\n" TASK0 "    forward_files: [[in.dat]]\n", 5,
                    "task_list[0].forward_files[0]: must be a string");
}

static void
test_unsafe_files (void **state)
{
    (void)state;
    /* a symlink leading out of the task directory (and the work base) */
    assert_int_equal (symlink (s_path ("secret"), s_path ("work/runs/t0/evil")), 0);
    s_expect_error ("work_base: runs\n" TASK0 "    forward_files: [in.dat, evil]\n", 5,
                    "task_list[0].forward_files[1]: 'evil' leads outside");
    /* ... also as a relative link to a sibling */
    assert_int_equal (symlink ("../common.dat", s_path ("work/runs/t0/up")), 0);
    s_expect_error ("work_base: runs\n" TASK0 "    forward_files: [up]\n", 5,
                    "task_list[0].forward_files[0]: 'up' leads outside");
    /* a common file escaping the work base */
    assert_int_equal (symlink ("../../secret", s_path ("work/runs/leak")), 0);
    s_expect_error ("work_base: runs\nforward_common_files: [leak]\n" TASK0, 2,
                    "forward_common_files[0]: 'leak' leads outside");
    /* a task directory that is a symlink out of the work base */
    assert_int_equal (symlink (jm_test_dir, s_path ("work/runs/t2")), 0);
    s_expect_error ("work_base: runs\n"
                    "task_list:\n"
                    "  - command: x\n"
                    "    task_work_path: t2\n"
                    "    forward_files: [secret]\n",
                    4, "task_list[0].task_work_path:");
    /* a directory or a FIFO is not a file (and must not hang the load) */
    mkdir (s_path ("work/runs/t0/sub"), 0755);
    s_expect_error ("work_base: runs\n" TASK0 "    forward_files: [sub]\n", 5,
                    "is not a regular file");
    assert_int_equal (mkfifo (s_path ("work/runs/t0/fifo"), 0600), 0);
    s_expect_error ("work_base: runs\n" TASK0 "    forward_files: [fifo]\n", 5,
                    "is not a regular file");
    /* a symlink that stays inside the task directory is fine (jm_path's
       fallback walk without openat2 refuses every symlink) */
    assert_int_equal (symlink ("in.dat", s_path ("work/runs/t0/alias")), 0);
    char err[2048] = "";
    jm_submission_t *s =
        s_load_text ("work_base: runs\n" TASK0 "    forward_files: [alias]\n", err, sizeof err);
    if (getenv ("JM_PATH_NO_OPENAT2"))
        assert_null (s);
    else if (!s)
        fail_msg ("%s", err);
    jm_submission_destroy (&s);
}

static size_t
s_count_files (const char *dir)
{
    DIR *d = opendir (dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir (d))) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        char sub[PATH_MAX];
        snprintf (sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat (sub, &st) == 0 && S_ISDIR (st.st_mode))
            n += s_count_files (sub);
        else
            n++;
    }
    closedir (d);
    return n;
}

static void
s_check_file (const jm_wfile_t *f, const char *name, const char *local, uint32_t mode,
              jm_store_t *store)
{
    char hash[JM_HASH_HEX];
    uint64_t size = 0;
    assert_int_equal (jm_sha256_file (local, hash, &size), 0);
    assert_string_equal (f->path, name);
    assert_string_equal (f->hash, hash);
    assert_int_equal (f->size, size);
    assert_int_equal (f->mode, mode);
    assert_true (jm_store_has (store, hash));
    if (size > 0) {
        /* the stored object holds the same bytes */
        char buf[256];
        ssize_t n = jm_store_read (store, hash, 0, buf, sizeof buf, NULL, 0);
        assert_int_equal (n, (ssize_t)size);
        size_t len = 0;
        char *orig = jm_test_read (local, &len);
        assert_non_null (orig);
        assert_int_equal (len, size);
        assert_memory_equal (buf, orig, size);
        free (orig);
    }
}

static void
test_to_msg (void **state)
{
    (void)state;
    char err[2048] = "";
    assert_int_equal (chmod (s_path ("work/runs/t0/in.dat"), 0750), 0);
    assert_int_equal (chmod (s_path ("work/runs/common.dat"), 0640), 0);
    jm_store_t *store = jm_store_new (s_path ("store"), err, sizeof err);
    assert_non_null (store);
    jm_submission_t *s = s_load_text (s_valid_yaml, err, sizeof err);
    if (!s)
        fail_msg ("%s", err);
    jm_msg_t *msg = jm_submission_to_msg (s, store, err, sizeof err);
    if (!msg)
        fail_msg ("%s", err);
    assert_int_equal (msg->id, JM_MSG_SUBMIT);
    assert_string_equal (msg->work_base, s->work_base_abs);
    assert_int_equal (msg->group_size, 10);
    assert_int_equal (msg->para_deg, 2);
    assert_int_equal (msg->common.n, 1);
    s_check_file (&msg->common.v[0], "common.dat", s_path ("work/runs/common.dat"), 0640, store);
    assert_int_equal (msg->backward_common.n, 1);
    assert_string_equal (msg->backward_common.v[0], "summary.txt");
    assert_int_equal (msg->tasks.n, 2);

    jm_wtask_t *t = &msg->tasks.v[0];
    assert_int_equal (t->id, 0);
    assert_string_equal (t->path, "t0");
    assert_string_equal (t->command, "cat in.dat > out.dat");
    assert_string_equal (t->outlog, "log");
    assert_string_equal (t->errlog, "err");
    assert_int_equal (t->forward.n, 1);
    s_check_file (&t->forward.v[0], "in.dat", s_path ("work/runs/t0/in.dat"), 0750, store);
    assert_int_equal (t->backward.n, 2);
    assert_string_equal (t->backward.v[0], "out.dat");
    assert_string_equal (t->backward.v[1], "*.log");

    t = &msg->tasks.v[1];
    assert_int_equal (t->id, 1);
    assert_string_equal (t->path, "t1/");
    assert_string_equal (t->outlog, "out.txt");
    assert_int_equal (t->forward.n, 2);
    s_check_file (&t->forward.v[0], "in.dat", s_path ("work/runs/t1/in.dat"), 0644, store);
    assert_string_equal (t->forward.v[1].hash, JM_HASH_EMPTY);
    assert_int_equal (t->forward.v[1].size, 0);
    assert_int_equal (t->backward.n, 0);

    /* the message is within the codec's limits */
    uint8_t *buf = NULL;
    size_t size = 0;
    if (jm_msg_encode (msg, &buf, &size, err, sizeof err))
        fail_msg ("%s", err);
    free (buf);
    jm_msg_destroy (&msg);

    /* a file removed between load and to_msg is an error naming it */
    unlink (s_path ("work/runs/t1/in.dat"));
    msg = jm_submission_to_msg (s, store, err, sizeof err);
    assert_null (msg);
    assert_non_null (strstr (err, "in.dat"));
    jm_submission_destroy (&s);
    jm_store_destroy (&store);
}

/* The resources map travels in SUBMIT as canonical JSON; a relative header
   template file is read next to the submission file (not in --work-dir). */
static void
test_resources_to_msg (void **state)
{
    (void)state;
    char err[2048] = "";
    jm_test_write (s_path ("hdr.tmpl"), "#SBATCH -N {number_node} -p {queue_name}\n");
    jm_store_t *store = jm_store_new (s_path ("store"), err, sizeof err);
    assert_non_null (store);
    jm_submission_t *s = s_load_text ("work_base: runs\n"
                                      "resources:\n"
                                      "  number_node: 2\n"
                                      "  cpu_per_node: 8\n"
                                      "  gpu_per_node: 1\n"
                                      "  queue_name: debug\n"
                                      "  group_size: 5\n"
                                      "  para_deg: 3\n"
                                      "  custom_flags: ['#SBATCH -t 0:01:00']\n"
                                      "  module_purge: true\n"
                                      "  envs: {PATH: '/opt/bin:$PATH', N: 4}\n"
                                      "  append_script: ['echo done']\n"
                                      "  wait_time: 1\n"
                                      "  strategy: {customized_script_header_template_file: "
                                      "hdr.tmpl}\n"
                                      "  kwargs: {pe_name: mpi, job_name: myjob}\n"
                                      "  job_array: false\n" TASK0,
                                      err, sizeof err);
    if (!s)
        fail_msg ("%s", err);
    assert_int_equal (s->group_size, 5);
    assert_int_equal (s->para_deg, 3);
    jm_msg_t *msg = jm_submission_to_msg (s, store, err, sizeof err);
    if (!msg)
        fail_msg ("%s", err);
    assert_int_equal (msg->group_size, 5);
    assert_int_equal (msg->para_deg, 3);
    assert_non_null (msg->resources);
    char *json = jm_resources_to_json (s->resources);
    assert_string_equal (msg->resources, json);
    free (json);

    /* through the codec, as the coordinator receives it */
    uint8_t *buf = NULL;
    size_t size = 0;
    if (jm_msg_encode (msg, &buf, &size, err, sizeof err))
        fail_msg ("%s", err);
    jm_msg_t *got = NULL;
    int rc = jm_msg_decode (buf, size, &got, NULL, err, sizeof err);
    free (buf);
    if (rc != 0 || !got)
        fail_msg ("%s", err);
    jm_resources_t *res = jm_resources_from_json (got->resources, "SUBMIT", err, sizeof err);
    if (!res)
        fail_msg ("%s", err);
    assert_int_equal (res->number_node, 2);
    assert_int_equal (res->cpu_per_node, 8);
    assert_int_equal (res->gpu_per_node, 1);
    assert_string_equal (res->queue_name, "debug");
    assert_int_equal (res->group_size, 5);
    assert_int_equal (res->para_deg, 3);
    assert_string_equal (res->custom_flags.v[0], "#SBATCH -t 0:01:00");
    assert_true (res->module_purge);
    assert_int_equal (res->n_envs, 2);
    assert_string_equal (res->envs[0].key, "PATH");
    assert_string_equal (res->envs[0].value, "/opt/bin:$PATH");
    assert_string_equal (res->envs[1].value, "4");
    assert_string_equal (res->append_script.v[0], "echo done");
    assert_int_equal (res->wait_time, 1);
    assert_string_equal (res->header_template, "#SBATCH -N {number_node} -p {queue_name}\n");
    assert_string_equal (res->pe_name, "mpi");
    assert_string_equal (res->job_name, "myjob");
    assert_false (res->job_array);
    jm_resources_destroy (&res);
    jm_msg_destroy (&got);
    jm_msg_destroy (&msg);
    jm_submission_destroy (&s);

    /* the template is looked up next to sub.yml, not in the work dir */
    rename (s_path ("hdr.tmpl"), s_path ("work/hdr.tmpl"));
    s_expect_error ("work_base: runs\nresources:\n  strategy:\n"
                    "    customized_script_header_template_file: hdr.tmpl\n" TASK0,
                    4, "cannot open 'hdr.tmpl'");
    jm_store_destroy (&store);
}

static void
test_failed_load_stores_nothing (void **state)
{
    (void)state;
    char err[2048] = "", objects[PATH_MAX];
    jm_store_t *store = jm_store_new (s_path ("store"), err, sizeof err);
    assert_non_null (store);
    snprintf (objects, sizeof objects, "%s/objects", s_path ("store"));
    /* valid common file and task 0, then a missing file in task 1 */
    jm_submission_t *s = s_load_text ("work_base: runs\n"
                                      "forward_common_files: [common.dat]\n"
                                      "task_list:\n"
                                      "  - command: x\n"
                                      "    task_work_path: t0\n"
                                      "    forward_files: [in.dat]\n"
                                      "  - command: y\n"
                                      "    task_work_path: t1\n"
                                      "    forward_files: [gone.dat]\n",
                                      err, sizeof err);
    assert_null (s);
    assert_non_null (strstr (err, "task_list[1].forward_files[0]"));
    assert_int_equal (s_count_files (objects), 0);
    jm_store_destroy (&store);
}

/* speculative: a top-level switch, default false, sent in SUBMIT. */
static void
test_speculative (void **state)
{
    (void)state;
    char err[2048] = "";
    jm_store_t *store = jm_store_new (s_path ("store"), err, sizeof err);
    assert_non_null (store);
    const char *values[] = {"", "speculative: true\n", "speculative: false\n", "speculative: yes\n",
                            "speculative:\n"};
    const bool want[] = {false, true, false, true, false};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        char text[512];
        snprintf (text, sizeof text, "work_base: runs\n%s" TASK0, values[i]);
        jm_submission_t *s = s_load_text (text, err, sizeof err);
        if (!s)
            fail_msg ("'%s': %s", values[i], err);
        assert_int_equal (s->speculative, want[i]);
        jm_msg_t *msg = jm_submission_to_msg (s, store, err, sizeof err);
        assert_non_null (msg);
        /* and it survives the wire */
        uint8_t *buf = NULL;
        size_t size = 0;
        assert_int_equal (jm_msg_encode (msg, &buf, &size, err, sizeof err), 0);
        jm_msg_t *got = NULL;
        assert_int_equal (jm_msg_decode (buf, size, &got, NULL, err, sizeof err), 0);
        assert_int_equal (got->speculative, want[i]);
        free (buf);
        jm_msg_destroy (&got);
        jm_msg_destroy (&msg);
        jm_submission_destroy (&s);
    }
    s_expect_error ("work_base: runs\nspeculative: 'true'\n" TASK0, 2,
                    "speculative: must be true or false, not 'true'");
    s_expect_error ("work_base: runs\nspeculative: 2\n" TASK0, 2,
                    "speculative: must be true or false");
    s_expect_error ("work_base: runs\nspeculative: [true]\n" TASK0, 2,
                    "speculative: must be true or false, not a list");
    s_expect_error ("work_base: runs\nspeculativ: true\n" TASK0, 2, "speculative, task_list)");
    jm_store_destroy (&store);
}

/* {command} without a machine file is refused, naming the task. */
static void
test_command_placeholder_needs_machine (void **state)
{
    (void)state;
    char err[2048] = "";
    jm_submission_t *s = s_load_text ("work_base: runs\n"
                                      "task_list:\n"
                                      "  - command: echo plain\n"
                                      "    task_work_path: t0\n"
                                      "  - command: '{command} -in in.dat'\n"
                                      "    task_work_path: t1\n",
                                      err, sizeof err);
    if (!s)
        fail_msg ("%s", err);
    assert_int_equal (jm_submission_check_no_machine (s, err, sizeof err), -1);
    char want[PATH_MAX + 128];
    snprintf (want, sizeof want,
              "%s: task 1 (t1): command uses {command} but no --machine file was given", s_subfile);
    assert_string_equal (err, want);
    jm_submission_destroy (&s);
    s = s_load_text ("work_base: runs\n" TASK0, err, sizeof err);
    assert_non_null (s);
    assert_int_equal (jm_submission_check_no_machine (s, err, sizeof err), 0);
    jm_submission_destroy (&s);
}

/* Machine entries become SUBMIT machine records. */
static void
test_machines_to_msg (void **state)
{
    (void)state;
    char err[2048] = "";
    jm_test_write (s_path ("machine.yml"), "dft_1:\n"
                                           "  machine:\n"
                                           "    batch_type: Slurm\n"
                                           "    context_type: SSHContext\n"
                                           "    remote_root: /scratch/me\n"
                                           "    remote_profile: {hostname: hpc1.example.org}\n"
                                           "  resources: {cpu_per_node: 32, group_size: 4}\n"
                                           "  command: mpirun -np 32 pw.x\n"
                                           "  submit_size: 10\n"
                                           "  work_load_ratio: 0.6\n"
                                           "dft_2:\n"
                                           "  machine: {batch_type: shell}\n"
                                           "  site: local\n"
                                           "train_1:\n"
                                           "  machine: {batch_type: shell}\n");
    jm_machines_t *machines =
        jm_machines_load (s_path ("machine.yml"), "dft", NULL, err, sizeof err);
    if (!machines)
        fail_msg ("%s", err);
    jm_msg_t *msg = jm_msg_new (JM_MSG_SUBMIT);
    jm_submission_add_machines (msg, machines);
    jm_machines_destroy (&machines);
    assert_int_equal (msg->machines.n, 2);
    jm_wmachine_t *m = &msg->machines.v[0];
    assert_string_equal (m->name, "dft_1");
    assert_string_equal (m->site, "");
    assert_string_equal (m->host, "hpc1.example.org");
    assert_string_equal (m->command, "mpirun -np 32 pw.x");
    assert_string_equal (m->root, "/scratch/me");
    assert_int_equal (m->submit_size, 10);
    assert_int_equal (m->ratio, 600000);
    jm_resources_t *res = jm_resources_from_json (m->resources, "test", err, sizeof err);
    if (!res)
        fail_msg ("resources '%s': %s", m->resources, err);
    assert_int_equal (res->cpu_per_node, 32);
    assert_int_equal (res->group_size, 4);
    jm_resources_destroy (&res);
    m = &msg->machines.v[1];
    assert_string_equal (m->name, "dft_2");
    assert_string_equal (m->site, "local");
    assert_string_equal (m->host, "");
    assert_string_equal (m->command, "");
    assert_string_equal (m->root, "");
    assert_string_equal (m->resources, ""); /* none: the submission's apply */
    assert_int_equal (m->submit_size, 0);
    assert_int_equal (m->ratio, 0);
    /* within the codec's limits, and decoded the same */
    jm_str_set (&msg->work_base, "/w");
    jm_str_set (&msg->resources, "");
    uint8_t *buf = NULL;
    size_t size = 0;
    if (jm_msg_encode (msg, &buf, &size, err, sizeof err))
        fail_msg ("%s", err);
    jm_msg_t *got = NULL;
    assert_int_equal (jm_msg_decode (buf, size, &got, NULL, err, sizeof err), 0);
    assert_int_equal (got->machines.n, 2);
    assert_string_equal (got->machines.v[0].host, "hpc1.example.org");
    assert_int_equal (got->machines.v[0].ratio, 600000);
    free (buf);
    jm_msg_destroy (&got);
    jm_msg_destroy (&msg);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_valid_yaml, s_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_valid_json, s_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_defaults, s_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_errors, s_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_unsafe_files, s_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_to_msg, s_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_resources_to_msg, s_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_failed_load_stores_nothing, s_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_speculative, s_setup, jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_command_placeholder_needs_machine, s_setup,
                                         jm_test_dir_teardown),
        cmocka_unit_test_setup_teardown (test_machines_to_msg, s_setup, jm_test_dir_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
