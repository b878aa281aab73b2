#!/usr/bin/env bash
# Throwaway single-node SLURM cluster for testing the Snakemake SLURM executor.
#
#   cluster.sh start STATE_DIR   install slurm-wlm+munge if missing, start munged,
#                                slurmctld, slurmd; wait for the node to be idle;
#                                write STATE_DIR/env.sh (source it in clients)
#   cluster.sh stop  STATE_DIR   cancel jobs, kill exactly the recorded daemons
#   cluster.sh status STATE_DIR  exit 0 if the recorded daemons are alive
#
# Everything (config, keys, sockets, spool, logs, pid files) lives in STATE_DIR,
# except the symlink /etc/slurm/slurm.conf -> STATE_DIR/slurm.conf (see start),
# so only one such cluster can run at a time.
# Must run as root (daemons, jobs and apt-get all run as root).
# Optional env: SLURM_TEST_CPUS (default max(nproc,8)), SLURM_TEST_GPUS (default 1),
#               SLURM_TEST_TIMEOUT (seconds to wait for the node, default 60).
# No accounting (slurmdbd) is configured: `sacct` fails, so the Snakemake plugin
# must run with `--slurm-status-command squeue` (see profiles/slurm/config.yaml).
set -euo pipefail

die() { echo "cluster.sh: error: $*" >&2; exit 1; }
log() { echo "cluster.sh: $*" >&2; }

usage() { echo "usage: $0 {start|stop|status} STATE_DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
CMD=$1
case $CMD in start | stop | status) ;; *) usage ;; esac
[[ $CMD == start ]] && mkdir -p "$2"
if [[ ! -d $2 ]]; then log "$2 does not exist; not running"; [[ $CMD == stop ]]; exit; fi
STATE=$(cd "$2" && pwd)   # absolute: slurm.conf paths must be absolute
PIDS=$STATE/pids          # lines of "<name> <pid>"

# True if pid is alive and still the daemon we started (guards against pid reuse).
alive() { # name pid
  [[ -r /proc/$2/comm ]] && [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1"* ]]
}

all_alive() { # [pids file]
  local f=${1:-$PIDS} name pid
  [[ -s $f ]] || return 1
  while read -r name pid; do alive "$name" "$pid" || return 1; done <"$f"
}

stop_daemons() {
  [[ -f $PIDS ]] || { log "nothing recorded in $PIDS; not running"; unlink_etc_conf; return 0; }
  # Cancel jobs first so their slurmstepd processes exit while slurmd is still up.
  if [[ -f $STATE/env.sh ]] && all_alive; then
    # shellcheck disable=SC1091
    ( source "$STATE/env.sh"
      ids=$(squeue -h -o %i 2>/dev/null || true)
      if [[ -n $ids ]]; then
        scancel $ids 2>/dev/null || true
        for _ in $(seq 20); do [[ -z $(squeue -h -o %i 2>/dev/null) ]] && break; sleep 0.5; done
      fi ) || true
  fi
  # Reverse start order: slurmd, slurmctld, munged.
  local name pid
  tac "$PIDS" | while read -r name pid; do
    if alive "$name" "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 40); do alive "$name" "$pid" || break; sleep 0.25; done
      if alive "$name" "$pid"; then
        log "$name ($pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 20); do alive "$name" "$pid" || break; sleep 0.25; done
      fi
      alive "$name" "$pid" && log "WARNING: $name ($pid) still alive" || log "stopped $name ($pid)"
    fi
  done
  rm -f "$PIDS"
  unlink_etc_conf
}

# Wait until FILE holds a pid of a live process called NAME, then record it.
record_pid() { # name pidfile
  local pid=""
  for _ in $(seq 100); do
    pid=$(cat "$2" 2>/dev/null || true)
    [[ -n $pid ]] && alive "$1" "$pid" && { echo "$1 $pid" >>"$PIDS"; return 0; }
    sleep 0.1
  done
  die "$1 did not start (see logs in $STATE/log)"
}

install_packages() {
  local missing=()
  for bin in slurmctld slurmd sinfo munged; do command -v "$bin" >/dev/null || missing+=("$bin"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "missing ${missing[*]} and not root; install slurm-wlm and munge"
  log "installing slurm-wlm munge (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends slurm-wlm munge >&2
}

ETC_CONF=/etc/slurm/slurm.conf
link_etc_conf() {
  if [[ -L $ETC_CONF ]]; then
    local target; target=$(readlink "$ETC_CONF")
    # Replace only our own links: to this STATE, or to a stopped/deleted one.
    if [[ $target != "$STATE/slurm.conf" ]] && all_alive "$(dirname "$target")/pids"; then
      die "$ETC_CONF links to $target of another running test cluster; stop it first"
    fi
  elif [[ -e $ETC_CONF ]]; then
    die "$ETC_CONF exists (a real slurm config?); refusing to replace it"
  fi
  mkdir -p /etc/slurm
  ln -sfn "$STATE/slurm.conf" "$ETC_CONF"
}

unlink_etc_conf() {
  if [[ -L $ETC_CONF && $(readlink "$ETC_CONF") == "$STATE/slurm.conf" ]]; then rm -f "$ETC_CONF"; fi
}

free_ports() { # print two free TCP ports (tiny race until the daemons bind them)
  command -v python3 >/dev/null || die "python3 is needed to pick free ports"
  python3 - <<'EOF'
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
EOF
}

start() {
  [[ $(id -u) -eq 0 ]] || die "must run as root"
  if all_alive; then log "already running (pids in $PIDS)"; return 0; fi
  [[ -f $PIDS ]] && { log "stale/partial state found; stopping leftovers"; stop_daemons; }
  install_packages

  local t0=$SECONDS node cpus gpus mem_mb ctld_port d_port
  node=$(hostname -s)
  cpus=${SLURM_TEST_CPUS:-$(( $(nproc) > 8 ? $(nproc) : 8 ))}
  gpus=${SLURM_TEST_GPUS:-1}
  # RealMemory a bit (~1 GB) below physical memory, in MB.
  mem_mb=$(awk '/MemTotal/ {m=int($2/1024)-1024; print (m>512?m:512)}' /proc/meminfo)
  read -r ctld_port d_port < <(free_ports)

  mkdir -p "$STATE"/{munge,ctld,slurmd,log}
  chmod 700 "$STATE/munge"
  rm -f "$STATE"/{slurmctld,slurmd}.pid "$STATE/munge/munged.pid"  # stale pids confuse record_pid
  : >"$PIDS"
  # From here on, a failure (or Ctrl-C) kills whatever we already started.
  trap 'rc=$?; if [[ $rc -ne 0 ]]; then log "start failed; cleaning up"; stop_daemons; fi' EXIT
  trap 'exit 130' INT TERM

  # The only file outside STATE_DIR: snakemake-executor-plugin-slurm-jobstep
  # strips every SLURM_* variable (SLURM_CONF included) before the `srun` it runs
  # inside each job, so srun can only find the config at the default path.
  link_etc_conf

  # --- munge: private key, socket and pid file (no interference with /etc/munge) ---
  if [[ ! -s $STATE/munge/munge.key ]]; then
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 400 "$STATE/munge/munge.key"
  # --force: munged otherwise refuses some root-owned/odd directory layouts.
  munged --force \
    --socket="$STATE/munge/munge.socket.2" \
    --key-file="$STATE/munge/munge.key" \
    --pid-file="$STATE/munge/munged.pid" \
    --seed-file="$STATE/munge/munged.seed" \
    --log-file="$STATE/log/munged.log" </dev/null
  record_pid munged "$STATE/munge/munged.pid"
  for _ in $(seq 50); do [[ -S $STATE/munge/munge.socket.2 ]] && break; sleep 0.1; done
  munge -S "$STATE/munge/munge.socket.2" -n | unmunge -S "$STATE/munge/munge.socket.2" >/dev/null \
    || die "munge self-test failed (see $STATE/log/munged.log)"

  # --- slurm config ---
  # Fake GPUs: slurmd reports 0 gpus for a gres.conf line without File=, which
  # makes the node INVAL; so point File= at symlinks to /dev/null (must be char
  # devices, numbered for indexing). Jobs asking --gpus=N / --gres=gpu:N are then
  # scheduled and get CUDA_VISIBLE_DEVICES set, but there is no real GPU.
  # config_overrides lets us advertise more CPUs than exist, so profiles
  # requesting e.g. cpus_per_gpu=4 still fit on a 2-core test machine.
  cat >"$STATE/slurm.conf" <<EOF
ClusterName=snaketest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket.2
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
# Finished jobs stay visible to squeue this long. The plugin only keeps using
# squeue if MinJobAge >= 3 * init_seconds_before_status_checks (default 40 s).
MinJobAge=300
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$node NodeHostname=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb $( ((gpus > 0)) && echo "Gres=gpu:$gpus") State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  rm -rf "$STATE/fakegpu" "$STATE/gres.conf"
  if ((gpus > 0)); then
    mkdir -p "$STATE/fakegpu"
    for ((i = 0; i < gpus; i++)); do ln -s /dev/null "$STATE/fakegpu/nvidia$i"; done
    echo "NodeName=$node Name=gpu File=$STATE/fakegpu/nvidia[0-$((gpus - 1))]" >"$STATE/gres.conf"
  fi

  cat >"$STATE/env.sh" <<EOF
# source me: points slurm clients (sinfo, sbatch, squeue, ...) at the test cluster
export SLURM_CONF=$STATE/slurm.conf
EOF
  export SLURM_CONF=$STATE/slurm.conf

  # Both daemons fork into the background themselves and write their pid files.
  slurmctld -f "$SLURM_CONF" </dev/null
  record_pid slurmctld "$STATE/slurmctld.pid"
  slurmd -f "$SLURM_CONF" -N "$node" </dev/null
  record_pid slurmd "$STATE/slurmd.pid"

  local timeout=${SLURM_TEST_TIMEOUT:-60} state=""
  while (( SECONDS - t0 < timeout )); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
    [[ $state == idle ]] && break
    all_alive || die "a daemon died during startup (see $STATE/log)"
    sleep 0.5
  done
  [[ $state == idle ]] || die "node $node not idle after ${timeout}s (state='$state'; see $STATE/log)"
  trap - EXIT INT TERM
  log "cluster up in $(( SECONDS - t0 ))s: node=$node cpus=$cpus gpus=$gpus mem=${mem_mb}MB ports=$ctld_port/$d_port"
  log "clients: source $STATE/env.sh"
}

case $CMD in
  start) start ;;
  stop) stop_daemons ;;
  status) if all_alive; then log "running"; cat "$PIDS"; else log "not running"; exit 1; fi ;;
esac
