/*  coord_main.c - jobman-coord: parses flags and calls jm_coord. */
#include "jm_client.h"
#include "jm_config.h"
#include "jm_coord.h"
#include "jm_log.h"
#include "jm_util.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_usage =
    "usage: jobman-coord COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  init  [--home DIR] [--bind EP]     create a coordinator home (keys, config, state)\n"
    "  run   [--home DIR] [--bind EP]     serve agents and clients until SIGINT/SIGTERM\n"
    "  allow AGENT.cert --name NAME [--home DIR]\n"
    "                                     let the holder of this public key connect\n"
    "  deny  NAME [--home DIR]            remove NAME from the allowlist\n"
    "  site  drain|resume NAME [--home DIR]\n"
    "                                     stop giving a site new work / give it work again\n"
    "\n"
    "--home defaults to $JOBMAN_HOME, else ~/.jobman.  'COMMAND --help' for details.\n";

static void
s_help (const char *cmd)
{
    if (!cmd)
        fputs (s_usage, stdout);
    else if (strcmp (cmd, "init") == 0)
        fputs ("usage: jobman-coord init [--home DIR] [--bind EP]\n"
               "Creates the home (mode 0700): coord and client CURVE key pairs, the\n"
               "allowlist (allowed/client.cert), config.yml (bind EP, default\n"
               "tcp://127.0.0.1:7100), state.db and store/.  Prints the path of\n"
               "coord.cert: give that file to every agent.  Refuses (exit 2) to touch\n"
               "a complete existing home.\n",
               stdout);
    else if (strcmp (cmd, "run") == 0)
        fputs ("usage: jobman-coord run [--home DIR] [--bind EP]\n"
               "Serves agents and clients on EP (default: config.yml's bind; a port of\n"
               "'*' picks a free one).  Writes <home>/coord.endpoint and coord.pid while\n"
               "running; logs to stderr (JOBMAN_LOG=debug for more).  Stops cleanly on\n"
               "SIGINT/SIGTERM.  Refuses (exit 2) if coord.cert_secret is readable by\n"
               "group or others.\n",
               stdout);
    else if (strcmp (cmd, "allow") == 0)
        fputs ("usage: jobman-coord allow AGENT.cert --name NAME [--home DIR]\n"
               "Adds the public key in AGENT.cert to the allowlist as\n"
               "allowed/NAME.cert (NAME: letters, digits, '.', '_', '-').  Takes effect\n"
               "on a running coordinator.  A different key under an existing NAME is\n"
               "refused.\n",
               stdout);
    else if (strcmp (cmd, "deny") == 0)
        fputs ("usage: jobman-coord deny NAME [--home DIR]\n"
               "Removes allowed/NAME.cert; new connections with that key are refused.\n",
               stdout);
    else if (strcmp (cmd, "site") == 0)
        fputs ("usage: jobman-coord site drain NAME [--home DIR]\n"
               "       jobman-coord site resume NAME [--home DIR]\n"
               "Asks the running coordinator of the home (as a client, with the home's\n"
               "client key) to drain the site NAME (it gets no new jobs; the jobs it has\n"
               "finish) or to resume it.  Kept across restarts.  Prints the site's line\n"
               "as 'jobman-submit sites' shows it.  Exit 1 if there is no such site or\n"
               "the coordinator is not running.\n",
               stdout);
    else
        fputs (s_usage, stdout);
}

/*  Is the coordinator of home running?  Its coord.pid names a live
    process while 'jobman-coord run' serves (removed on a clean stop). */
static bool
s_coord_running (const char *home)
{
    char path[PATH_MAX];
    snprintf (path, sizeof path, "%s/coord.pid", home);
    char *text = jm_read_file (path, NULL, NULL, 0);
    if (!text)
        return false;
    char *end;
    long pid = strtol (text, &end, 10);
    free (text);
    if (pid <= 0 || (*end && *end != '\n'))
        return true; /* unreadable: let the connection attempt decide */
    return kill ((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* 'site drain|resume NAME': 0, or 1 with the reason on stderr. */
static int
s_site (const char *home_flag, const char *verb, const char *site)
{
    char *home = jm_home_resolve (home_flag);
    if (!home) {
        fprintf (stderr, "jobman-coord: cannot find the home directory: use --home DIR or set "
                         "JOBMAN_HOME\n");
        return 2;
    }
    if (!*site) {
        fprintf (stderr, "jobman-coord site: empty site name\n");
        free (home);
        return 2;
    }
    if (!s_coord_running (home)) {
        fprintf (stderr,
                 "jobman-coord: the coordinator of %s is not running (no live process in "
                 "%s/coord.pid); start it with 'jobman-coord run --home %s'\n",
                 home, home, home);
        free (home);
        return 1;
    }
    jm_client_opts_t opts = {.home = home, .prog = "jobman-coord"};
    int rc = jm_client_cmd_site_set (&opts, site, strcmp (verb, "drain") == 0);
    free (home);
    return rc;
}

int
main (int argc, char **argv)
{
    jm_log_init ("jobman-coord");
    if (argc < 2) {
        fputs (s_usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp (cmd, "--help") == 0 || strcmp (cmd, "-h") == 0 || strcmp (cmd, "help") == 0) {
        s_help (argc > 2 ? argv[2] : NULL);
        return 0;
    }
    if (strcmp (cmd, "init") && strcmp (cmd, "run") && strcmp (cmd, "allow") &&
        strcmp (cmd, "deny") && strcmp (cmd, "site")) {
        fprintf (stderr, "jobman-coord: unknown command '%s'\n%s", cmd, s_usage);
        return 2;
    }
    static struct option opts[] = {{"home", required_argument, 0, 'H'},
                                   {"bind", required_argument, 0, 'b'},
                                   {"name", required_argument, 0, 'n'},
                                   {"help", no_argument, 0, 'h'},
                                   {0, 0, 0, 0}};
    const char *home_flag = NULL, *bind = NULL, *name = NULL;
    optind = 2;
    int c;
    while ((c = getopt_long (argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            home_flag = optarg;
            break;
        case 'b':
            bind = optarg;
            break;
        case 'n':
            name = optarg;
            break;
        case 'h':
            s_help (cmd);
            return 0;
        default:
            fprintf (stderr, "jobman-coord %s: see 'jobman-coord %s --help'\n", cmd, cmd);
            return 2;
        }
    }
    int nargs = argc - optind;
    bool wants_arg = strcmp (cmd, "allow") == 0 || strcmp (cmd, "deny") == 0;
    if (strcmp (cmd, "site") == 0) {
        if (nargs != 2 ||
            (strcmp (argv[optind], "drain") != 0 && strcmp (argv[optind], "resume") != 0)) {
            fprintf (stderr, "jobman-coord site: expected 'drain NAME' or 'resume NAME'; see "
                             "'jobman-coord site --help'\n");
            return 2;
        }
        if (bind || name) {
            fprintf (stderr, "jobman-coord site: option not valid for this command\n");
            return 2;
        }
        return s_site (home_flag, argv[optind], argv[optind + 1]);
    }
    if (nargs != (wants_arg ? 1 : 0)) {
        fprintf (stderr,
                 "jobman-coord %s: wrong number of arguments; see 'jobman-coord %s --help'\n", cmd,
                 cmd);
        return 2;
    }
    if ((bind && wants_arg) || (name && strcmp (cmd, "allow") != 0)) {
        fprintf (stderr, "jobman-coord %s: option not valid for this command\n", cmd);
        return 2;
    }
    char *home = jm_home_resolve (home_flag);
    if (!home) {
        fprintf (stderr, "jobman-coord: cannot find the home directory: use --home DIR or set "
                         "JOBMAN_HOME\n");
        return 2;
    }
    char err[4096];
    int rc = 0;
    if (strcmp (cmd, "init") == 0) {
        rc = jm_coord_init_home (home, bind, err, sizeof err);
        if (rc != 0)
            fprintf (stderr, "jobman-coord init: %s\n", err);
        else
            printf ("coordinator home %s ready\nagents need this certificate: %s/coord.cert\n",
                    home, home);
    }
    else if (strcmp (cmd, "run") == 0)
        rc = jm_coord_run (home, bind);
    else if (strcmp (cmd, "allow") == 0) {
        if (!name) {
            fprintf (stderr, "jobman-coord allow: --name NAME is required\n");
            rc = 2;
        }
        else if (jm_coord_allow (home, argv[optind], name, err, sizeof err) != 0) {
            fprintf (stderr, "jobman-coord allow: %s\n", err);
            rc = 1;
        }
        else
            printf ("allowed '%s' (%s/allowed/%s.cert)\n", name, home, name);
    }
    else {
        if (jm_coord_deny (home, argv[optind], err, sizeof err) != 0) {
            fprintf (stderr, "jobman-coord deny: %s\n", err);
            rc = 1;
        }
        else
            printf ("denied '%s'\n", argv[optind]);
    }
    free (home);
    return rc;
}
