/*  submit_main.c - jobman-submit: flags in, jm_client commands out. */
#include "jm_client.h"
#include "jm_config.h"
#include "jm_log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_usage_main =
    "usage: jobman-submit [--home DIR] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  submit SUBMISSION.yml|.json [--machine FILE [--prefix P]] [--work-dir DIR]\n"
    "         [--wait] [--json]\n"
    "                       send a submission; prints its id\n"
    "  status [ID] [--json] per-state counts; with ID, every task's state\n"
    "  wait ID              follow a submission until it finishes\n"
    "  cancel ID            cancel a submission's unfinished tasks\n"
    "  list [--json]        one line per submission\n"
    "  sites [--json]       the agents' sites: state, capacity, load, last heartbeat\n"
    "\n"
    "options:\n"
    "  --home DIR           jobman home shared with the coordinator\n"
    "                       (default $JOBMAN_HOME, else ~/.jobman)\n"
    "  -h, --help           this text ('jobman-submit COMMAND --help' for a command)\n"
    "\n"
    "exit codes: 0 success (all tasks done), 1 a task failed or was cancelled\n"
    "or the request failed, 2 bad usage or bad input (nothing submitted),\n"
    "3 cannot reach the coordinator ($JOBMAN_TIMEOUT_MS, default 5000).\n";

static const char *s_usage_submit =
    "usage: jobman-submit submit SUBMISSION.yml|.json [--machine FILE [--prefix P]]\n"
    "                            [--work-dir DIR] [--wait] [--json] [--home DIR]\n"
    "\n"
    "Validate a dpdispatcher-style submission file, put its forward files into\n"
    "the coordinator's store and submit it.  Prints the submission id (with\n"
    "--json: {\"id\": ..., \"total\": ...}).\n"
    "\n"
    "  --machine FILE  run on these machine entries (thkit MACHINE.yml, dpdispatcher\n"
    "                  or dpgen machine.json): each is served by the agent whose site\n"
    "                  is the entry's 'site', else its remote_profile.hostname; a task\n"
    "                  command's {command} becomes the entry's command there.  Entries\n"
    "                  no connected agent serves are named on stderr, with how to\n"
    "                  start their agent.  Without --machine, any site runs the tasks\n"
    "  --prefix P      only the entries whose name starts with P (e.g. dft)\n"
    "  --work-dir DIR  directory work_base is relative to (default: current)\n"
    "  --wait          then follow it like 'wait' (exit 0 only if every task is done)\n"
    "  --json          machine-readable output (progress then goes to stderr)\n";

static const char *s_usage_status =
    "usage: jobman-submit status [ID] [--json] [--home DIR]\n"
    "\n"
    "Without ID: a summary of every submission.  With ID: its per-state counts\n"
    "and, for each task, its path, state, exit code, site and reason.\n";

static const char *s_usage_wait =
    "usage: jobman-submit wait ID [--home DIR]\n"
    "\n"
    "Follow a submission until every task has finished: a progress bar on a\n"
    "terminal, one line per change (at most one a second) otherwise.\n"
    "Exit 0 if every task is done, 1 if some task failed or was cancelled,\n"
    "3 if the coordinator is unreachable or silent for 15 s.\n";

static const char *s_usage_cancel = "usage: jobman-submit cancel ID [--home DIR]\n"
                                    "\n"
                                    "Cancel every unfinished task of a submission.\n";

static const char *s_usage_list = "usage: jobman-submit list [--json] [--home DIR]\n"
                                  "\n"
                                  "One line per submission: id, state, progress, creation time,\n"
                                  "work base.\n";

static const char *s_usage_sites =
    "usage: jobman-submit sites [--json] [--home DIR]\n"
    "\n"
    "One line per site the coordinator knows: NAME, STATE (up, lost or gone;\n"
    "',drained' when drained), SCHED, CAPACITY (jobs at once [/max_jobs],\n"
    "cores and GPUs per job), RUNNING tasks, QUEUED jobs, DONE/MIN (tasks ended\n"
    "in the last minute), WAIT (median queue wait), LAST-HEARTBEAT and the ssh\n"
    "TUNNEL state.  --json: an array of objects with every field.\n"
    "Drain or resume a site with 'jobman-coord site drain|resume NAME'.\n";

static int
s_bad_usage (const char *usage, const char *fmt, const char *arg)
{
    fprintf (stderr, "jobman-submit: ");
    fprintf (stderr, fmt, arg);
    fprintf (stderr, "\n%s", usage);
    return JM_EXIT_USAGE;
}

int
main (int argc, char **argv)
{
    jm_log_init ("jobman-submit");
    const char *home_flag = NULL;
    const char *work_dir = NULL;
    const char *machine_file = NULL, *prefix = NULL;
    const char *command = NULL;
    bool json = false, wait = false, help = false;
    const char *pos[8];
    int npos = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp (a, "-h") == 0 || strcmp (a, "--help") == 0)
            help = true;
        else if (strcmp (a, "--home") == 0 || strcmp (a, "--work-dir") == 0) {
            if (i + 1 >= argc)
                return s_bad_usage (s_usage_main, "option %s needs a value", a);
            if (strcmp (a, "--home") == 0)
                home_flag = argv[++i];
            else
                work_dir = argv[++i];
        }
        else if (strcmp (a, "--machine") == 0 || strcmp (a, "--prefix") == 0) {
            if (i + 1 >= argc)
                return s_bad_usage (s_usage_submit, "option %s needs a value", a);
            if (strcmp (a, "--machine") == 0)
                machine_file = argv[++i];
            else
                prefix = argv[++i];
        }
        else if (strncmp (a, "--machine=", 10) == 0)
            machine_file = a + 10;
        else if (strncmp (a, "--prefix=", 9) == 0)
            prefix = a + 9;
        else if (strncmp (a, "--home=", 7) == 0)
            home_flag = a + 7;
        else if (strncmp (a, "--work-dir=", 11) == 0)
            work_dir = a + 11;
        else if (strcmp (a, "--json") == 0)
            json = true;
        else if (strcmp (a, "--wait") == 0)
            wait = true;
        else if (strcmp (a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (!command)
                    command = argv[i];
                else if (npos < 8)
                    pos[npos++] = argv[i];
                else
                    return s_bad_usage (s_usage_main, "too many arguments", "");
            }
        }
        else if (a[0] == '-' && a[1])
            return s_bad_usage (s_usage_main, "unknown option '%s'", a);
        else if (!command)
            command = a;
        else if (npos < 8)
            pos[npos++] = a;
        else
            return s_bad_usage (s_usage_main, "too many arguments", "");
    }

    const char *usage = s_usage_main;
    int want_min = 0, want_max = 0;
    if (!command) {
        if (help) {
            fputs (s_usage_main, stdout);
            return JM_EXIT_OK;
        }
        return s_bad_usage (s_usage_main, "no command given%s", "");
    }
    if (strcmp (command, "submit") == 0)
        usage = s_usage_submit, want_min = 1, want_max = 1;
    else if (strcmp (command, "status") == 0)
        usage = s_usage_status, want_min = 0, want_max = 1;
    else if (strcmp (command, "wait") == 0)
        usage = s_usage_wait, want_min = 1, want_max = 1;
    else if (strcmp (command, "cancel") == 0)
        usage = s_usage_cancel, want_min = 1, want_max = 1;
    else if (strcmp (command, "list") == 0)
        usage = s_usage_list, want_min = 0, want_max = 0;
    else if (strcmp (command, "sites") == 0)
        usage = s_usage_sites, want_min = 0, want_max = 0;
    else if (strcmp (command, "help") == 0) {
        fputs (s_usage_main, stdout);
        return JM_EXIT_OK;
    }
    else
        return s_bad_usage (s_usage_main, "unknown command '%s'", command);
    if (help) {
        fputs (usage, stdout);
        return JM_EXIT_OK;
    }
    if (npos < want_min)
        return s_bad_usage (usage, "%s: missing argument", command);
    if (npos > want_max)
        return s_bad_usage (usage, "unexpected argument '%s'", pos[want_max]);
    if ((wait || work_dir) && strcmp (command, "submit") != 0)
        return s_bad_usage (usage, "%s: --wait and --work-dir belong to 'submit'", command);
    if ((machine_file || prefix) && strcmp (command, "submit") != 0)
        return s_bad_usage (usage, "%s: --machine and --prefix belong to 'submit'", command);
    if (prefix && !machine_file)
        return s_bad_usage (usage, "%s: --prefix needs --machine FILE", command);
    if (machine_file && !*machine_file)
        return s_bad_usage (usage, "%s: --machine needs a file name", command);
    if (json && strcmp (command, "wait") == 0)
        return s_bad_usage (usage, "%s: --json is not supported here", command);
    if (npos == 1 && strcmp (command, "submit") != 0 && !*pos[0])
        return s_bad_usage (usage, "%s: empty submission id", command);

    char *home = jm_home_resolve (home_flag);
    if (!home) {
        fprintf (stderr, "jobman-submit: cannot resolve the jobman home (use --home DIR or "
                         "set JOBMAN_HOME)\n");
        return JM_EXIT_USAGE;
    }
    jm_client_opts_t opts = {.home = home,
                             .json = json,
                             .wait = wait,
                             .work_dir = work_dir,
                             .progress = -1,
                             .machine_file = machine_file,
                             .prefix = prefix};
    int rc;
    if (strcmp (command, "submit") == 0)
        rc = jm_client_cmd_submit (&opts, pos[0]);
    else if (strcmp (command, "status") == 0)
        rc = jm_client_cmd_status (&opts, npos ? pos[0] : NULL);
    else if (strcmp (command, "wait") == 0)
        rc = jm_client_cmd_wait (&opts, pos[0]);
    else if (strcmp (command, "cancel") == 0)
        rc = jm_client_cmd_cancel (&opts, pos[0]);
    else if (strcmp (command, "sites") == 0)
        rc = jm_client_cmd_sites (&opts);
    else
        rc = jm_client_cmd_list (&opts);
    free (home);
    return rc;
}
