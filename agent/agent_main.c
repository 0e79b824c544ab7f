/*  agent_main.c - jobman-agent: parses flags and calls jm_agent. */
#include "jm_agent.h"
#include "jm_config.h"
#include "jm_keys.h"
#include "jm_log.h"
#include "jm_path.h"

#include <ctype.h>
#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *s_usage =
    "usage: jobman-agent init --home DIR\n"
    "       jobman-agent run --home DIR (--coordinator tcp://HOST:PORT | --bind ENDPOINT)\n"
    "                        --coordinator-cert FILE --site NAME --root DIR\n"
    "                        [--allow-root DIR]... [--scheduler NAME] [--slots N]\n"
    "                        [--cores N] [--gpus N] [--cache-max SIZE]\n"
    "                        [--poll-ms N] [--submit-rate N] [--submit-burst N] [--retry-ms N]\n"
    "                        [--heartbeat-ms N]\n"
    "       jobman-agent COMMAND --help\n";

static const char *s_init_help =
    "usage: jobman-agent init --home DIR\n"
    "Creates DIR (mode 0700) and the agent's CURVE key pair in it, then prints\n"
    "the path of DIR/agent.cert: copy that file into the coordinator's\n"
    "allowed/ directory to admit this agent.  --home defaults to $JOBMAN_HOME.\n";

static const char *s_run_help =
    "usage: jobman-agent run --home DIR (--coordinator tcp://HOST:PORT | --bind ENDPOINT)\n"
    "                        --coordinator-cert FILE --site NAME --root DIR\n"
    "                        [--allow-root DIR]... [--scheduler NAME] [--slots N]\n"
    "                        [--cores N] [--gpus N] [--cache-max SIZE] [--poll-ms N]\n"
    "                        [--submit-rate N] [--submit-burst N] [--retry-ms N]\n"
    "                        [--heartbeat-ms N]\n"
    "Dials out to the coordinator (or waits for it to connect) and runs the jobs it sends.\n"
    "  --home DIR              agent home (agent.cert_secret, store/); default $JOBMAN_HOME\n"
    "  --coordinator EP        the coordinator's endpoint, e.g. tcp://host:7100\n"
    "  --bind EP               instead of --coordinator: listen on EP (e.g. tcp://*:7200 or\n"
    "                          tcp://127.0.0.1:7200 behind 'ssh -L') and let the coordinator\n"
    "                          connect; CURVE is the same either way\n"
    "  --coordinator-cert FILE the coordinator's public certificate (coord.cert)\n"
    "  --site NAME             this site's name ([A-Za-z0-9._-])\n"
    "  --root DIR              where job files are placed (created if missing); a job's\n"
    "                          root (a machine entry's remote_root) may be DIR or below it\n"
    "  --allow-root DIR        also accept job roots at or below DIR (repeatable)\n"
    "  --scheduler NAME        shell (default), slurm, sge, pbs (PBS Pro/OpenPBS), torque,\n"
    "                          lsf; dpdispatcher's batch_type names work too\n"
    "  --slots N, --max-jobs N jobs at once (batch schedulers: queued or running);\n"
    "                          default: online CPUs for shell, 100 otherwise\n"
    "  --cores N               most cores one job can request (default: online CPUs for\n"
    "                          shell, not stated otherwise)\n"
    "  --gpus N                most GPUs one job can request (default 0)\n"
    "  --cache-max SIZE        limit the file cache (home/store) to SIZE bytes (suffix K, M,\n"
    "                          G, T: powers of 1024), evicting the least recently used files\n"
    "                          no job here still needs (default: no limit)\n"
    "  --poll-ms N             batch: one status query per N ms (default 10000)\n"
    "  --submit-rate N         batch: at most N submit calls per minute (default: no limit)\n"
    "  --submit-burst N        batch: up to N submit calls at once within the rate (default 5)\n"
    "  --retry-ms N            batch: first wait after the scheduler refused a job because of\n"
    "                          a user/QOS limit (doubles up to 300 s; default 10000)\n"
    "  --heartbeat-ms N        heartbeat interval until the coordinator sets it\n"
    "SIGINT/SIGTERM stop the agent and kill its running shell jobs (batch jobs stay\n"
    "with their scheduler).\n";

static int
s_parse_u64 (const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull (s, &end, 10);
    if (errno || end == s || *end || *s == '-') {
        fprintf (stderr, "jobman-agent: %s: '%s' is not a positive number\n", flag, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* "10G" -> bytes (K, M, G, T: powers of 1024; an optional trailing B). */
static int
s_parse_size (const char *flag, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull (s, &end, 10);
    uint64_t mult = 1;
    const char *suf = end;
    const char *units = "KMGT";
    const char *u = *suf ? strchr (units, toupper ((unsigned char)*suf)) : NULL;
    if (u) {
        mult = 1ull << (10 * (u - units + 1));
        suf++;
    }
    if (*suf == 'B' || *suf == 'b')
        suf++;
    if (errno || end == s || *suf || *s == '-' || v == 0 || v > UINT64_MAX / mult) {
        fprintf (stderr,
                 "jobman-agent: %s: '%s' is not a size (a positive number of bytes, with an "
                 "optional suffix K, M, G or T)\n",
                 flag, s);
        return -1;
    }
    *out = (uint64_t)v * mult;
    return 0;
}

static int
s_init (int argc, char **argv)
{
    static struct option opts[] = {
        {"home", required_argument, 0, 'h'}, {"help", no_argument, 0, 'H'}, {0, 0, 0, 0}};
    const char *home = NULL;
    int c;
    while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        if (c == 'h')
            home = optarg;
        else if (c == 'H') {
            fputs (s_init_help, stdout);
            return 0;
        }
        else {
            fputs (s_init_help, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "jobman-agent init: unexpected argument '%s'\n%s", argv[optind],
                 s_init_help);
        return 2;
    }
    char *dir = jm_home_resolve (home);
    if (!dir) {
        fprintf (stderr, "jobman-agent init: no home: give --home DIR or set $JOBMAN_HOME\n");
        return 2;
    }
    char err[1024];
    if (jm_mkdirs (dir, 0700, err, sizeof err) != 0 || chmod (dir, 0700) != 0) {
        fprintf (stderr, "jobman-agent init: cannot create '%s': %s\n", dir,
                 err[0] ? err : strerror (errno));
        free (dir);
        return 1;
    }
    if (jm_keys_create (dir, "agent", err, sizeof err) != 0) {
        fprintf (stderr, "jobman-agent init: %s\n", err);
        free (dir);
        return 1;
    }
    printf ("%s/agent.cert\n", dir);
    free (dir);
    return 0;
}

static int
s_run (int argc, char **argv)
{
    static struct option opts[] = {{"home", required_argument, 0, 'h'},
                                   {"coordinator", required_argument, 0, 'c'},
                                   {"coordinator-cert", required_argument, 0, 'C'},
                                   {"site", required_argument, 0, 's'},
                                   {"root", required_argument, 0, 'r'},
                                   {"scheduler", required_argument, 0, 'S'},
                                   {"slots", required_argument, 0, 'n'},
                                   {"max-jobs", required_argument, 0, 'n'},
                                   {"poll-ms", required_argument, 0, 'p'},
                                   {"submit-rate", required_argument, 0, 'R'},
                                   {"submit-burst", required_argument, 0, 'B'},
                                   {"retry-ms", required_argument, 0, 'T'},
                                   {"heartbeat-ms", required_argument, 0, 'b'},
                                   {"bind", required_argument, 0, 'L'},
                                   {"allow-root", required_argument, 0, 'A'},
                                   {"cores", required_argument, 0, 'o'},
                                   {"gpus", required_argument, 0, 'g'},
                                   {"cache-max", required_argument, 0, 'M'},
                                   {"help", no_argument, 0, 'H'},
                                   {0, 0, 0, 0}};
    jm_agent_config_t cfg = {.stop_fd = -1, .scheduler = "shell"};
    const char *home = NULL;
    const char **allow = calloc ((size_t)argc + 1, sizeof *allow);
    if (!allow)
        return 1;
    cfg.allow_roots = allow;
    uint64_t v;
    int c, rc = 2;
    while ((c = getopt_long (argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            home = optarg;
            break;
        case 'L':
            cfg.bind = optarg;
            break;
        case 'A':
            allow[cfg.n_allow_roots++] = optarg;
            break;
        case 'o':
        case 'g':
            if (s_parse_u64 (c == 'o' ? "--cores" : "--gpus", optarg, &v) || v > 1000000) {
                fprintf (stderr, "jobman-agent: %s must be 0..1000000\n",
                         c == 'o' ? "--cores" : "--gpus");
                goto out;
            }
            if (c == 'o')
                cfg.cores = (size_t)v;
            else
                cfg.gpus = (size_t)v;
            break;
        case 'M':
            if (s_parse_size ("--cache-max", optarg, &v))
                goto out;
            cfg.cache_max = v;
            break;
        case 'c':
            cfg.coordinator = optarg;
            break;
        case 'C':
            cfg.coordinator_cert = optarg;
            break;
        case 's':
            cfg.site = optarg;
            break;
        case 'r':
            cfg.root = optarg;
            break;
        case 'S':
            cfg.scheduler = optarg;
            break;
        case 'n':
            if (s_parse_u64 ("--slots/--max-jobs", optarg, &v) || v == 0 || v > 100000) {
                fprintf (stderr, "jobman-agent: --slots/--max-jobs must be 1..100000\n");
                goto out;
            }
            cfg.slots = (size_t)v;
            break;
        case 'p':
        case 'R':
        case 'B':
        case 'T': {
            const char *flag = c == 'p'   ? "--poll-ms"
                               : c == 'R' ? "--submit-rate"
                               : c == 'B' ? "--submit-burst"
                                          : "--retry-ms";
            uint64_t lo = c == 'p' ? 50 : c == 'B' ? 1 : c == 'T' ? 10 : 0;
            if (s_parse_u64 (flag, optarg, &v) || v < lo || v > 86400000) {
                fprintf (stderr, "jobman-agent: %s must be %" PRIu64 "..86400000\n", flag, lo);
                goto out;
            }
            unsigned *dst = c == 'p'   ? &cfg.poll_ms
                            : c == 'R' ? &cfg.submit_per_min
                            : c == 'B' ? &cfg.submit_burst
                                       : &cfg.retry_ms;
            *dst = (unsigned)v;
            break;
        }
        case 'b':
            if (s_parse_u64 ("--heartbeat-ms", optarg, &v) || v < 10) {
                fprintf (stderr, "jobman-agent: --heartbeat-ms must be at least 10\n");
                goto out;
            }
            cfg.heartbeat_ms = v;
            break;
        case 'H':
            fputs (s_run_help, stdout);
            rc = 0;
            goto out;
        default:
            fputs (s_run_help, stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf (stderr, "jobman-agent run: unexpected argument '%s'\n%s", argv[optind],
                 s_run_help);
        goto out;
    }
    char *dir = jm_home_resolve (home);
    cfg.home = dir;
    if (!cfg.site)
        cfg.site = "";
    char err[1024];
    if (jm_agent_config_check (&cfg, err, sizeof err) != 0) {
        fprintf (stderr, "jobman-agent: %s\n", err);
        free (dir);
        goto out;
    }
    rc = jm_agent_run (&cfg);
    free (dir);
out:
    free (allow);
    return rc;
}

int
main (int argc, char **argv)
{
    jm_log_init ("jobman-agent");
    if (argc < 2) {
        fputs (s_usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp (cmd, "--help") == 0 || strcmp (cmd, "-h") == 0 || strcmp (cmd, "help") == 0) {
        fputs (s_usage, stdout);
        return 0;
    }
    int rc;
    if (strcmp (cmd, "init") == 0)
        rc = s_init (argc - 1, argv + 1);
    else if (strcmp (cmd, "run") == 0)
        rc = s_run (argc - 1, argv + 1);
    else {
        fprintf (stderr, "jobman-agent: unknown command '%s'\n%s", cmd, s_usage);
        return 2;
    }
    zsys_shutdown ();
    return rc;
}
