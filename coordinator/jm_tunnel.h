/*  jm_tunnel.h - persistent reverse ssh tunnels from the coordinator to the
    login nodes of a machine file, so that an agent there dials
    tcp://127.0.0.1:<remote_port> on its login node and reaches the
    coordinator (CURVE stays on inside the tunnel).

    One tunnel per entry of machines with a remote_profile.hostname:

      ssh -N -R 127.0.0.1:<remote_port>:<local_host>:<local_port>
          [-p port] [-l username] [-i key_filename (~ expanded)]
          [-o ProxyCommand=...] -o ExitOnForwardFailure=yes
          -o ServerAliveInterval=10 -o ServerAliveCountMax=3
          -o BatchMode=yes hostname

    Nothing else is overridden, so the user's ~/.ssh/config applies.
    Entries that reach the same login node (same hostname, port and
    username) share one tunnel, the first entry's: a second ssh would
    find the remote port taken.  Such a tunnel serves the sites of all
    those entries (jm_tunnels_state_for finds it by any of them).

    Each ssh runs in its own process group with stdin and stdout on
    /dev/null and its stderr read through a non-blocking pipe polled by
    the loop (the last line is kept for the state text).  It is watched
    from the loop: "up" once it has stayed alive for 2 s (with
    ExitOnForwardFailure a failed forward exits at once), and restarted
    when it exits, after 1 s, doubling up to 60 s, back to 1 s once a run
    stayed up for 60 s.  Children are reaped by PID only.  Start, exit
    and restart are logged.  Single-threaded: the loop's thread only. */
#ifndef JM_TUNNEL_H
#define JM_TUNNEL_H

#include "jm_machine.h"
#include <czmq.h>
#include <stddef.h>

typedef struct _jm_tunnels_t jm_tunnels_t;

/*  ssh_prog NULL = "ssh" (PATH lookup; tests may pass a path).  local_host
    is where the coordinator listens as seen from this machine (an IPv6
    address is bracketed for -R).  Nothing starts until jm_tunnels_start.
    machines is only read here (may be destroyed afterwards).  NULL + err
    (a bad port). */
jm_tunnels_t *jm_tunnels_new (zloop_t *loop, const jm_machines_t *machines, const char *ssh_prog,
                              unsigned remote_port, const char *local_host, unsigned local_port,
                              char *err, size_t errlen);
/* Starts every ssh (a spawn that fails is retried like an exit).  0, or -1
   if already started. */
int jm_tunnels_start (jm_tunnels_t *self);
/* Kills every ssh it started (its process group: TERM, KILL after 1 s),
   by PID, and reaps it; removes its timers and pollers from the loop. */
void jm_tunnels_destroy (jm_tunnels_t **self_p);
size_t jm_tunnels_size (jm_tunnels_t *self);

/*  i-th tunnel (< size): the site name it serves (jm_machine_site_for of
    its entry), the entry name, and its state text:
      "idle" (before jm_tunnels_start)
      "starting (pid N)"
      "up (pid N) since HH:MM:SS" (local time)
      "down: <ssh's last stderr line or exit status>; retry in 8 s"
    Strings are valid until the next call on self. */
const char *jm_tunnels_site (jm_tunnels_t *self, size_t i);
const char *jm_tunnels_entry (jm_tunnels_t *self, size_t i);
const char *jm_tunnels_state (jm_tunnels_t *self, size_t i);
/* PID of the i-th tunnel's ssh, or 0 when none runs (for tests). */
int jm_tunnels_pid (jm_tunnels_t *self, size_t i);
/* State text of the tunnel serving site name, or NULL. */
const char *jm_tunnels_state_for (jm_tunnels_t *self, const char *site);

#endif
