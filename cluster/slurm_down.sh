#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by cluster/slurm_up.sh: slurmd, slurmctld, then munged, each by
# the PID file slurm_up.sh recorded (nothing else is touched; packages stay installed). Safe to run twice.
set -euo pipefail

SLURM_DIR=${AE_SLURM_DIR:-/var/lib/archive-encoders-slurm}
RUN_DIR=$SLURM_DIR/run

stop() { # stop NAME: TERM the process in NAME.pid if it is still NAME, wait, then KILL
    local pidfile=$RUN_DIR/$1.pid pid
    [[ -s $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ -d /proc/$pid ]] && grep -qx "$1" "/proc/$pid/comm" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        if [[ -d /proc/$pid ]]; then
            echo "slurm_down: $1 ($pid) ignored TERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        echo "slurm_down: stopped $1 ($pid)" >&2
    fi
    rm -f "$pidfile"
}

stop slurmd
stop slurmctld
stop munged
rm -f "$RUN_DIR/munge/munged.pid"
