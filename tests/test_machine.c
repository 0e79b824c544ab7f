/*  test_machine.c - machine files users already have: thkit's MACHINE.yml
    (with --prefix), dpdispatcher's machine.json, dpgen's machine.json;
    every refusal names FILE:LINE and the field; notices; {command}. */
#define _GNU_SOURCE
#include "jm_machine.h"

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

/* A realistic thkit MACHINE.yml: one GPU training machine, two DFT
   clusters reached over SSH. */
static const char *s_thkit = "train_1:\n"                                           /* 1 */
                             "  machine:\n"                                         /* 2 */
                             "    batch_type: Slurm\n"                              /* 3 */
                             "    context_type: LocalContext\n"                     /* 4 */
                             "    remote_root: /scratch/me/train\n"                 /* 5 */
                             "    local_root: ./\n"                                 /* 6 */
                             "  resources:\n"                                       /* 7 */
                             "    number_node: 1\n"                                 /* 8 */
                             "    cpu_per_node: 8\n"                                /* 9 */
                             "    gpu_per_node: 1\n"                                /* 10 */
                             "    queue_name: gpu\n"                                /* 11 */
                             "    group_size: 1\n"                                  /* 12 */
                             "    module_list: [cuda/12.2]\n"                       /* 13 */
                             "  command: dp\n"                                      /* 14 */
                             "dft_1:\n"                                             /* 15 */
                             "  machine:\n"                                         /* 16 */
                             "    batch_type: SLURM\n"                              /* 17 */
                             "    context_type: SSHContext\n"                       /* 18 */
                             "    remote_root: /home/me/dft\n"                      /* 19 */
                             "    retry_count: 5\n"                                 /* 20 */
                             "    clean_asynchronously: true\n"                     /* 21 */
                             "    remote_profile:\n"                                /* 22 */
                             "      hostname: hpc1.example.org\n"                   /* 23 */
                             "      username: me\n"                                 /* 24 */
                             "      port: 2222\n"                                   /* 25 */
                             "      key_filename: ~/.ssh/id_ed25519\n"              /* 26 */
                             "      passphrase: ~\n"                                /* 27 */
                             "      timeout: 20\n"                                  /* 28 */
                             "      look_for_keys: true\n"                          /* 29 */
                             "      execute_command: \"source ~/.bashrc\"\n"        /* 30 */
                             "  resources:\n"                                       /* 31 */
                             "    number_node: 1\n"                                 /* 32 */
                             "    cpu_per_node: 32\n"                               /* 33 */
                             "    group_size: 4\n"                                  /* 34 */
                             "    source_list: [~/qe.env]\n"                        /* 35 */
                             "  command: mpirun -np 32 pw.x\n"                      /* 36 */
                             "  submit_size: 10\n"                                  /* 37 */
                             "  work_load_ratio: 0.6\n"                             /* 38 */
                             "dft_2:\n"                                             /* 39 */
                             "  machine:\n"                                         /* 40 */
                             "    batch_type: pbs\n"                                /* 41 */
                             "    context_type: ssh\n"                              /* 42 */
                             "    remote_root: /work/me/dft\n"                      /* 43 */
                             "    remote_profile:\n"                                /* 44 */
                             "      hostname: login.hpc2.example.org\n"             /* 45 */
                             "      username: me2\n"                                /* 46 */
                             "      proxy_command: ssh -W %h:%p gate.example.org\n" /* 47 */
                             "  resources:\n"                                       /* 48 */
                             "    cpu_per_node: 24\n"                               /* 49 */
                             "    strategy: {if_cuda_multi_devices: false}\n"       /* 50 */
                             "  command: \"srun --mpi=pmix pw.x\"\n"                /* 51 */
                             "  work_load_ratio: 0.4\n"                             /* 52 */
                             "  site: hpc2\n";                                      /* 53 */

static jm_machines_t *
s_load (const char *name, const char *text, const char *prefix, char **notices, char *err,
        size_t errlen)
{
    const char *path = jm_test_path (jm_test_dir, name);
    jm_test_write (path, text);
    return jm_machines_load (path, prefix, notices, err, errlen);
}

static void
test_thkit (void **state)
{
    (void)state;
    char err[1024] = "", *notices = NULL;
    jm_machines_t *ms = s_load ("MACHINE.yml", s_thkit, NULL, &notices, err, sizeof err);
    if (!ms)
        fail_msg ("%s", err);
    assert_int_equal (jm_machines_count (ms), 3);

    const jm_machine_t *t = jm_machines_entry (ms, 0);
    assert_string_equal (t->name, "train_1");
    assert_int_equal (t->line, 1);
    assert_string_equal (t->batch_type, "slurm");
    assert_string_equal (t->context_type, "LocalContext");
    assert_string_equal (t->remote_root, "/scratch/me/train");
    assert_int_equal (t->retry_count, 3);
    assert_null (t->remote_profile.hostname);
    assert_null (t->site);
    assert_null (jm_machine_site_for (t));
    assert_string_equal (t->command, "dp");
    assert_int_equal (t->submit_size, 0);
    assert_true (t->work_load_ratio == 0);
    assert_int_equal (t->resources->cpu_per_node, 8);
    assert_int_equal (t->resources->gpu_per_node, 1);
    assert_string_equal (t->resources->queue_name, "gpu");
    assert_int_equal (t->resources->module_list.n, 1);

    const jm_machine_t *d1 = jm_machines_entry (ms, 1);
    assert_string_equal (d1->name, "dft_1");
    assert_int_equal (d1->line, 15);
    assert_string_equal (d1->batch_type, "slurm");
    assert_int_equal (d1->retry_count, 5);
    assert_string_equal (d1->remote_profile.hostname, "hpc1.example.org");
    assert_string_equal (d1->remote_profile.username, "me");
    assert_string_equal (d1->remote_profile.port, "2222");
    assert_string_equal (d1->remote_profile.key_filename, "~/.ssh/id_ed25519");
    assert_null (d1->remote_profile.proxy_command);
    assert_string_equal (jm_machine_site_for (d1), "hpc1.example.org");
    assert_string_equal (d1->command, "mpirun -np 32 pw.x");
    assert_int_equal (d1->submit_size, 10);
    assert_true (d1->work_load_ratio > 0.599 && d1->work_load_ratio < 0.601);
    assert_int_equal (d1->resources->cpu_per_node, 32);
    assert_int_equal (d1->resources->group_size, 4);

    const jm_machine_t *d2 = jm_machines_find (ms, "dft_2");
    assert_non_null (d2);
    assert_ptr_equal (d2, jm_machines_entry (ms, 2));
    assert_string_equal (d2->batch_type, "pbs");
    assert_string_equal (d2->remote_profile.proxy_command, "ssh -W %h:%p gate.example.org");
    assert_null (d2->remote_profile.port);
    assert_string_equal (d2->site, "hpc2");
    assert_string_equal (jm_machine_site_for (d2), "hpc2"); /* explicit beats hostname */
    assert_int_equal (d2->resources->cpu_per_node, 24);
    assert_null (jm_machines_find (ms, "dft_3"));

    /* notices: ONE line for SSH (two SSH entries), and the resources
       notice says which entry it is about */
    assert_non_null (notices);
    char *ssh = strstr (notices, "MACHINE.yml:18: dft_1.machine.context_type: 'SSHContext'");
    assert_non_null (ssh);
    assert_non_null (strstr (ssh, "jobman-agent"));
    assert_null (strstr (strstr (ssh, "context_type") + 1, "context_type"));
    assert_non_null (strstr (notices, "MACHINE.yml:50: dft_2.resources.strategy."
                                      "if_cuda_multi_devices: accepted but ignored"));
    size_t lines = 0;
    for (const char *p = notices; *p; p++)
        lines += *p == '\n';
    assert_int_equal (lines, 2);
    free (notices);
    jm_machines_destroy (&ms);
    assert_null (ms);

    /* --prefix dft: the two DFT entries, in file order */
    notices = (char *)1;
    ms = s_load ("MACHINE.yml", s_thkit, "dft", &notices, err, sizeof err);
    assert_non_null (ms);
    assert_int_equal (jm_machines_count (ms), 2);
    assert_string_equal (jm_machines_entry (ms, 0)->name, "dft_1");
    assert_string_equal (jm_machines_entry (ms, 1)->name, "dft_2");
    assert_non_null (notices);
    free (notices);
    jm_machines_destroy (&ms);

    ms = s_load ("MACHINE.yml", s_thkit, "train", NULL, err, sizeof err);
    assert_non_null (ms);
    assert_int_equal (jm_machines_count (ms), 1);
    assert_string_equal (jm_machines_entry (ms, 0)->name, "train_1");
    jm_machines_destroy (&ms);

    /* a prefix nothing starts with names it and lists the entries */
    notices = (char *)1;
    ms = s_load ("MACHINE.yml", s_thkit, "md", &notices, err, sizeof err);
    assert_null (ms);
    assert_null (notices);
    assert_non_null (strstr (err, "MACHINE.yml: no machine entry starts with the prefix 'md' "
                                  "(entries: train_1, dft_1, dft_2)"));
}

static void
test_dpdispatcher (void **state)
{
    (void)state;
    const char *json =
        "{\n"
        "  \"machine\": {\n"
        "    \"batch_type\": \"Shell\",\n"
        "    \"context_type\": \"LazyLocalContext\",\n"
        "    \"local_root\": \"./\",\n"
        "    \"remote_root\": \"/tmp/dpwork\"\n"
        "  },\n"
        "  \"resources\": {\"number_node\": 1, \"cpu_per_node\": 4, \"group_size\": 5,\n"
        "                \"para_deg\": 2, \"envs\": {\"OMP_NUM_THREADS\": 1}}\n"
        "}\n";
    char err[1024] = "", *notices = (char *)1;
    jm_machines_t *ms = s_load ("machine.json", json, NULL, &notices, err, sizeof err);
    if (!ms)
        fail_msg ("%s", err);
    assert_null (notices); /* nothing ignored, no SSH */
    assert_int_equal (jm_machines_count (ms), 1);
    const jm_machine_t *m = jm_machines_entry (ms, 0);
    assert_string_equal (m->name, "machine");
    assert_string_equal (m->batch_type, "shell");
    assert_string_equal (m->remote_root, "/tmp/dpwork");
    assert_null (m->command);
    assert_null (jm_machine_site_for (m));
    assert_int_equal (m->resources->group_size, 5);
    assert_int_equal (m->resources->para_deg, 2);
    assert_int_equal (m->resources->n_envs, 1);
    assert_string_equal (m->resources->envs[0].value, "1");
    jm_machines_destroy (&ms);

    /* without resources: the defaults, never NULL */
    ms = s_load ("machine.json", "{\"machine\": {\"batch_type\": \"LSF\"}}", NULL, NULL, err,
                 sizeof err);
    assert_non_null (ms);
    m = jm_machines_entry (ms, 0);
    assert_string_equal (m->batch_type, "lsf");
    assert_non_null (m->resources);
    assert_int_equal (m->resources->group_size, 1);
    jm_machines_destroy (&ms);

    /* errors have no entry path in front: the keys are the file's own */
    ms = s_load ("machine.json", "{\"machine\": {\"batch_type\": \"Bohrium\"}}", NULL, NULL, err,
                 sizeof err);
    assert_null (ms);
    assert_non_null (strstr (err, "machine.json:1: machine.batch_type: 'Bohrium' is not "
                                  "supported (one of: shell, slurm, slurmjobarray, sge, pbs, "
                                  "openpbs, torque, lsf, any case)"));
    ms = s_load ("machine.json",
                 "{\"machine\": {\"batch_type\": \"Shell\"},\n \"resources\": {\"cpus\": 2}}", NULL,
                 NULL, err, sizeof err);
    assert_null (ms);
    assert_non_null (
        strstr (err, "machine.json:2: resources: unknown key 'cpus' (known: number_node,"));
}

static void
test_dpgen (void **state)
{
    (void)state;
    const char *json =
        "{\n"                                /* 1 */
        "  \"api_version\": \"1.0\",\n"      /* 2 */
        "  \"deepmd_version\": \"2.2.7\",\n" /* 3 */
        "  \"train\": [\n"                   /* 4 */
        "    {\"command\": \"dp\",\n"        /* 5 */
        "     \"machine\": {\"batch_type\": \"Slurm\", \"context_type\": \"local\"},\n"
        "     \"resources\": {\"gpu_per_node\": 1, \"queue_name\": \"gpu\"}}\n" /* 7 */
        "  ],\n"                                                                /* 8 */
        "  \"model_devi\": {\"command\": \"lmp\",\n"                            /* 9 */
        "     \"machine\": {\"batch_type\": \"Slurm\"}},\n"                     /* 10 */
        "  \"fp\": [\n"                                                         /* 11 */
        "    {\"command\": \"mpirun -n 32 vasp_std\",\n"                        /* 12 */
        "     \"machine\": {\"batch_type\": \"PBS\", \"context_type\": \"SSHContext\",\n"
        "       \"remote_profile\": {\"hostname\": \"hpc1\", \"username\": \"me\"}},\n"
        "     \"resources\": {\"cpu_per_node\": 32, \"group_size\": 2}},\n"    /* 15 */
        "    {\"command\": \"srun vasp_std\",\n"                               /* 16 */
        "     \"machine\": {\"batch_type\": \"LSF\"},\n"                       /* 17 */
        "     \"resources\": {\"cpu_per_node\": 64, \"group_size\": \"x\"}}\n" /* 18 */
        "  ]\n"                                                                /* 19 */
        "}\n";
    char err[1024] = "";
    /* fp[1] has a bad group_size: named by its place in the list */
    jm_machines_t *ms = s_load ("dpgen.json", json, NULL, NULL, err, sizeof err);
    assert_null (ms);
    assert_non_null (strstr (err, "dpgen.json:18: fp[1].resources.group_size: must be an "
                                  "integer"));

    char *good = strdup (json);
    char *x = strstr (good, "\"x\"");
    memcpy (x, " 3 ", 3);
    char *notices = NULL;
    ms = s_load ("dpgen.json", good, NULL, &notices, err, sizeof err);
    if (!ms)
        fail_msg ("%s", err);
    assert_int_equal (jm_machines_count (ms), 4);
    const char *names[] = {"train_0", "model_devi_0", "fp_0", "fp_1"};
    const char *cmds[] = {"dp", "lmp", "mpirun -n 32 vasp_std", "srun vasp_std"};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal (jm_machines_entry (ms, i)->name, names[i]);
        assert_string_equal (jm_machines_entry (ms, i)->command, cmds[i]);
    }
    assert_string_equal (jm_machines_entry (ms, 0)->resources->queue_name, "gpu");
    assert_string_equal (jm_machine_site_for (jm_machines_entry (ms, 2)), "hpc1");
    assert_int_equal (jm_machines_entry (ms, 3)->resources->group_size, 3);
    assert_non_null (notices);
    assert_non_null (strstr (notices, "dpgen.json:13: fp[0].machine.context_type: "
                                      "'SSHContext' accepted"));
    free (notices);
    jm_machines_destroy (&ms);

    /* the prefix selects the step */
    ms = s_load ("dpgen.json", good, "fp", NULL, err, sizeof err);
    assert_non_null (ms);
    assert_int_equal (jm_machines_count (ms), 2);
    assert_string_equal (jm_machines_entry (ms, 0)->name, "fp_0");
    assert_string_equal (jm_machines_entry (ms, 1)->name, "fp_1");
    jm_machines_destroy (&ms);
    ms = s_load ("dpgen.json", good, "model_devi", NULL, err, sizeof err);
    assert_non_null (ms);
    assert_int_equal (jm_machines_count (ms), 1);
    jm_machines_destroy (&ms);
    ms = s_load ("dpgen.json", good, "dft", NULL, err, sizeof err);
    assert_null (ms);
    assert_non_null (strstr (err, "prefix 'dft' (entries: train_0, model_devi_0, fp_0, fp_1)"));
    free (good);

    /* an unknown top-level key of a dpgen file */
    ms = s_load ("dpgen.json", "{\"api_version\": \"1.0\",\n \"trian\": []}", NULL, NULL, err,
                 sizeof err);
    assert_null (ms);
    assert_non_null (strstr (err, "dpgen.json:2: trian: unknown key in a dpgen machine file "
                                  "(known: train, model_devi, fp, api_version, deepmd_version)"));
}

/* Each bad file: the message names FILE:LINE, the field and the problem. */
static void
test_refusals (void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"a_1:\n  machine: {batch_type: slurm}\n  comand: x\n",
         "m.yml:3: a_1.comand: unknown key of a machine entry (known: machine, resources, "
         "command, submit_size, work_load_ratio, site)"},
        {"a_1:\n  command: x\n", "m.yml:1: a_1.machine: missing"},
        {"a_1:\n  machine: [slurm]\n", "m.yml:2: a_1.machine: must be a map, not a list"},
        {"a_1:\n  machine:\n    context_type: local\n",
         "m.yml:3: a_1.machine.batch_type: missing (one of: shell, slurm"},
        {"a_1:\n  machine:\n    batch_type: Fugaku\n",
         "m.yml:3: a_1.machine.batch_type: 'Fugaku' is not supported"},
        {"a_1:\n  machine:\n    batch_type: slurm\n    retry_count: -1\n",
         "m.yml:4: a_1.machine.retry_count: must be an integer from 0 to 1000, not '-1'"},
        {"a_1:\n  machine:\n    batch_type: slurm\n    remote_root: [a]\n",
         "m.yml:4: a_1.machine.remote_root: must be a string, not a list"},
        {"a_1:\n  machine:\n    batch_type: slurm\n    remote_profile: host\n",
         "m.yml:4: a_1.machine.remote_profile: must be a map, not a string"},
        {"a_1:\n  machine:\n    batch_type: slurm\n    remote_profile:\n"
         "      hostname: -oProxyCommand=evil\n",
         "m.yml:5: a_1.machine.remote_profile.hostname: '-oProxyCommand=evil' is not a plain "
         "name"},
        {"a_1:\n  machine:\n    batch_type: slurm\n    remote_profile:\n"
         "      username: \"me you\"\n",
         "m.yml:5: a_1.machine.remote_profile.username: 'me you' is not a plain name"},
        {"a_1:\n  machine:\n    batch_type: slurm\n    remote_profile:\n      port: 70000\n",
         "m.yml:5: a_1.machine.remote_profile.port: must be an integer from 1 to 65535, not "
         "'70000'"},
        {"a_1:\n  machine:\n    batch_type: slurm\n    remote_profile:\n"
         "      proxy_command: \"a\\nb\"\n",
         "m.yml:5: a_1.machine.remote_profile.proxy_command: must be one line"},
        {"a_1:\n  machine: {batch_type: slurm}\n  submit_size: 0\n",
         "m.yml:3: a_1.submit_size: must be an integer from 1 to"},
        {"a_1:\n  machine: {batch_type: slurm}\n  submit_size: \"5\"\n",
         "m.yml:3: a_1.submit_size: must be an integer from 1 to 1000000000, not a string '5'"},
        {"a_1:\n  machine: {batch_type: slurm}\n  work_load_ratio: 0\n",
         "m.yml:3: a_1.work_load_ratio: must be a number above 0, not '0'"},
        {"a_1:\n  machine: {batch_type: slurm}\n  work_load_ratio: half\n",
         "m.yml:3: a_1.work_load_ratio: must be a number above 0"},
        {"a_1:\n  machine: {batch_type: slurm}\n  work_load_ratio: .nan\n",
         "m.yml:3: a_1.work_load_ratio: must be a number above 0"},
        {"a_1:\n  machine: {batch_type: slurm}\n  site: \"hpc 1\"\n",
         "m.yml:3: a_1.site: 'hpc 1' is not a site name ([A-Za-z0-9._-]"},
        {"a_1:\n  machine: {batch_type: slurm}\n  command: {a: b}\n",
         "m.yml:3: a_1.command: must be a string, not a map"},
        {"a_1:\n  machine: {batch_type: slurm}\n  resources:\n    group_size: 0\n",
         "m.yml:4: a_1.resources.group_size: must be an integer from 1"},
        {"a_1:\n  machine: {batch_type: slurm}\nb_2:\n  machine: {batch_type: slurm}\n"
         "  resources:\n    queue_name: \"a b\"\n",
         "m.yml:6: b_2.resources.queue_name:"},
        {"a_1: 3\n", "m.yml:1: a_1: must be a machine entry (a map with machine, resources, "
                     "command), not a string"},
        {"- a\n", "m.yml:1: a machine file must be a map"},
        {"", "m.yml:1: a machine file must be a map (of machine entries, or machine/resources), "
             "not empty"},
        {"{}\n", "m.yml:1: no machine entries"},
        {"api_version: '1.0'\nfp: []\n", "m.yml:2: fp: an empty list"},
        {"a_1: {machine: {batch_type: slurm}\n", "m.yml:"}, /* YAML syntax */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char err[1024] = "", *notices = (char *)1;
        jm_machines_t *ms = s_load ("m.yml", cases[i].yaml, NULL, &notices, err, sizeof err);
        if (ms || !strstr (err, cases[i].want) || notices)
            fail_msg ("case %zu: want '%s', got %s '%s'", i, cases[i].want,
                      ms ? "success" : "error", err);
        /* the message starts with the file's path */
        assert_memory_equal (err, jm_test_dir, strlen (jm_test_dir));
    }

    /* a file that is not there */
    char err[1024] = "";
    assert_null (
        jm_machines_load (jm_test_path (jm_test_dir, "nope.yml"), NULL, NULL, err, sizeof err));
    assert_non_null (strstr (err, "nope.yml"));
}

/* A header template file is found next to the machine file. */
static void
test_template_relative (void **state)
{
    (void)state;
    jm_test_write (jm_test_path (jm_test_dir, "hdr.tmpl"), "#SBATCH -c {cpu_per_node}\n");
    char err[1024] = "";
    jm_machines_t *ms = s_load ("t.yml",
                                "a_1:\n  machine: {batch_type: slurm}\n  resources:\n"
                                "    cpu_per_node: 6\n    strategy:\n"
                                "      customized_script_header_template_file: hdr.tmpl\n",
                                NULL, NULL, err, sizeof err);
    if (!ms)
        fail_msg ("%s", err);
    const jm_machine_t *m = jm_machines_entry (ms, 0);
    assert_string_equal (m->resources->header_template, "#SBATCH -c {cpu_per_node}\n");
    char *filled = jm_resources_fill_template (m->resources, "j1", err, sizeof err);
    assert_string_equal (filled, "#SBATCH -c 6\n");
    free (filled);
    jm_machines_destroy (&ms);
}

static void
test_substitute (void **state)
{
    (void)state;
    char *s = jm_machine_substitute_command ("{command} -i in.pwi > out && {command} -v",
                                             "mpirun -np 32 pw.x");
    assert_string_equal (s, "mpirun -np 32 pw.x -i in.pwi > out && mpirun -np 32 pw.x -v");
    free (s);
    /* no placeholder: unchanged; the machine command is not re-scanned */
    s = jm_machine_substitute_command ("echo hi", "x");
    assert_string_equal (s, "echo hi");
    free (s);
    s = jm_machine_substitute_command ("{command}", "a {command} b");
    assert_string_equal (s, "a {command} b");
    free (s);
    s = jm_machine_substitute_command ("run {command} {comman} {{command}}", "X");
    assert_string_equal (s, "run X {comman} {X}");
    free (s);
    /* no machine command: an unchanged copy */
    const char *task = "{command} -i in";
    s = jm_machine_substitute_command (task, NULL);
    assert_string_equal (s, task);
    assert_ptr_not_equal (s, task);
    free (s);
    s = jm_machine_substitute_command ("{command}", "");
    assert_string_equal (s, "");
    free (s);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_thkit),
        cmocka_unit_test (test_dpdispatcher),
        cmocka_unit_test (test_dpgen),
        cmocka_unit_test (test_refusals),
        cmocka_unit_test (test_template_relative),
        cmocka_unit_test (test_substitute),
    };
    return cmocka_run_group_tests (tests, jm_test_dir_setup, jm_test_dir_teardown);
}
