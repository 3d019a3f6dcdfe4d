#!/usr/bin/env bash
# A throw-away one-node SLURM cluster on localhost, for the cluster tests (and for trying the profile).
#
#   bash tests/cluster/start_slurm.sh install
#       installs Debian's SLURM, MUNGE and MariaDB when missing (root; starts no service)
#   bash tests/cluster/start_slurm.sh run DIR
#       starts the cluster under DIR (an empty folder) and keeps it up until SIGTERM or Ctrl-C (or
#       until its parent process is gone), then stops everything it started, by PID
#
# `run` starts, in order: munged (own key and socket), mariadbd (127.0.0.1, own port and socket),
# slurmdbd, slurmctld and slurmd, each in the foreground as a child of this script. When the node is
# idle it prints `slurm ready: DIR/env.sh` (source that file to use the cluster from a shell). Nothing
# is written outside DIR: no /etc, no system services. Partitions `cpu` (default) and `gpu` share the
# one node, which offers one pretend GPU (gres `gpu:fakegpu:1` backed by /dev/null): `--gpus=1` jobs
# run, and a second one waits on Resources. Account `posetransfer`, cluster `posetransfer`.
set -euo pipefail

PACKAGES=(slurm-wlm munge slurmdbd mariadb-server)

install_packages() {
    local missing=()
    for command in slurmctld slurmd slurmdbd munged mariadbd sbatch; do
        command -v "$command" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin" command -v "$command" >/dev/null 2>&1 ||
            missing+=("$command")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        echo "start_slurm.sh: ${missing[*]} missing; install ${PACKAGES[*]} (Debian) as root" >&2
        return 1
    fi
    # Installing must not start the packages' system services (they would take the default ports).
    local policy=/usr/sbin/policy-rc.d created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && created_policy=1
    fi
    local status=0
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q "${PACKAGES[@]}" >/dev/null 2>&1; then
        # A fresh machine may have no package lists yet.
        apt-get update -q >/dev/null && apt-get install -y -q "${PACKAGES[@]}" >/dev/null || status=$?
    fi
    if [[ $created_policy -eq 1 ]]; then
        rm -f "$policy"
    fi
    return "$status"
}

# ---------------------------------------------------------------------------------------------- run

DIR=""
PIDS=()
NAMES=()

log() { echo "start_slurm.sh: $*" >&2; }

stop_all() {
    # Jobs first: their processes belong to slurmstepd, not to us, and would outlive slurmd.
    # Then the daemons in reverse order of start (slurmd, slurmctld, slurmdbd, mariadbd, munged),
    # by PID, waiting for each.
    trap - EXIT INT TERM
    if [[ -n ${SLURM_CONF:-} && -f $SLURM_CONF ]] && timeout 5 scontrol ping >/dev/null 2>&1; then
        timeout 10 scancel --quiet --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 50); do
            [[ -z $(timeout 5 squeue -h -o %i 2>/dev/null) ]] && break
            sleep 0.2
        done
    fi
    local index pid
    for ((index = ${#PIDS[@]} - 1; index >= 0; index--)); do
        pid=${PIDS[index]}
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "${NAMES[index]} (pid $pid) ignored SIGTERM for 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}

fail() {
    log "$*"
    for file in "$DIR"/log/*.log; do
        [[ -s $file ]] && { echo "--- $file" >&2 && tail -n 15 "$file" >&2; }
    done
    exit 1
}

start() {
    # start NAME COMMAND...: run a daemon in the foreground as our child; remember its PID.
    local name=$1
    shift
    "$@" >>"$DIR/log/$name.out" 2>&1 &
    PIDS+=($!)
    NAMES+=("$name")
}

wait_for() {
    # wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds; fail naming WHAT otherwise.
    local what=$1 seconds=$2
    shift 2
    local tries=$((seconds * 5))
    for _ in $(seq "$tries"); do
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        local index
        for index in "${!PIDS[@]}"; do
            kill -0 "${PIDS[index]}" 2>/dev/null || fail "${NAMES[index]} exited while waiting for $what"
        done
        sleep 0.2
    done
    fail "timed out after ${seconds} s waiting for $what"
}

free_port() {
    # A TCP port on 127.0.0.1 that nothing listens on, from a random start (parallel clusters differ).
    local port=$((20000 + RANDOM % 30000))
    while (: </dev/tcp/127.0.0.1/"$port") 2>/dev/null || [[ " ${USED_PORTS:-} " == *" $port "* ]]; do
        port=$((port + 1))
    done
    USED_PORTS="${USED_PORTS:-} $port"
    echo "$port"
}

run_cluster() {
    DIR=$(realpath "$1")
    mkdir -p "$DIR"/{etc,log,run,munge,mysql,state,spool,bin}
    chmod 700 "$DIR/munge"
    trap stop_all EXIT
    trap 'exit 0' INT TERM

    local sbin=/usr/sbin node conf=$DIR/etc/slurm.conf socket=$DIR/munge/munge.socket
    node=$(hostname -s)
    local mysql_port dbd_port ctld_port slurmd_port
    mysql_port=$(free_port)
    dbd_port=$(free_port)
    ctld_port=$(free_port)
    slurmd_port=$(free_port)
    export SLURM_CONF=$conf

    # MUNGE: own key and socket.
    "$sbin/mungekey" --create --keyfile="$DIR/munge/munge.key" 2>>"$DIR/log/munged.log"
    start munged "$sbin/munged" --foreground --force --key-file="$DIR/munge/munge.key" --socket="$socket" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/seed"
    wait_for munged 20 bash -c "munge -n -S '$socket' | unmunge -S '$socket'"

    # MariaDB for slurmdbd's accounting: own data folder, socket and port on 127.0.0.1.
    local mysql=(--no-defaults --datadir="$DIR/mysql" --socket="$DIR/run/mysql.sock")
    mariadb-install-db "${mysql[@]}" --user=root --skip-test-db --auth-root-authentication-method=socket \
        >"$DIR/log/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed"
    start mariadbd "$sbin/mariadbd" "${mysql[@]}" --user=root --port="$mysql_port" --bind-address=127.0.0.1 \
        --pid-file="$DIR/run/mariadbd.pid" --log-error="$DIR/log/mariadbd.log" --skip-name-resolve \
        --innodb-buffer-pool-size=32M --innodb-log-file-size=16M --innodb-flush-log-at-trx-commit=2 \
        --performance-schema=OFF --skip-log-bin
    wait_for mariadbd 60 mariadb-admin --no-defaults --socket="$DIR/run/mysql.sock" ping
    local password
    password=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
    mariadb --no-defaults --socket="$DIR/run/mysql.sock" -u root -e "
        CREATE DATABASE slurm_acct_db;
        CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$password';
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" || fail "creating the accounting database failed"

    # SLURM configuration. The node's memory comes from `slurmd -C`; its CPUs are the machine's plus one
    # (slurmd takes the configured count: SlurmdParameters=config_overrides), so that a test job that
    # only sleeps (see tests/cluster/probes.smk) does not hold back the real jobs. Jobs asking for all
    # the machine's cores still run one at a time, as with `snakemake --cores N` locally.
    local cpus memory
    cpus=$(("$(nproc)" + 1))
    memory=$("$sbin/slurmd" -C | head -n 1 | sed -n -e "s/.* RealMemory=\([0-9]*\).*/\1/p")
    cat >"$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$mysql_port
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"
    cat >"$conf" <<EOF
# Written by tests/cluster/start_slurm.sh: a one-node cluster on localhost under $DIR.
ClusterName=posetransfer
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# No cgroups in a container or VM without them.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$dbd_port
# Clients find slurmdbd's MUNGE socket through this (not through AuthInfo).
AccountingStoragePass=$socket
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
# sacct shows each job's --comment (the plugin puts the rule and wildcards there).
AccountingStoreFlags=job_comment
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
# Without a default, a job takes all the node's memory and jobs run one at a time.
DefMemPerCPU=1000
GresTypes=gpu
MailProg=/bin/true
ReturnToService=2
# Finished jobs stay visible to squeue for 5 minutes (the profile's status command is squeue).
MinJobAge=300
# A cancelled or timed-out job gets SIGTERM, then SIGKILL 2 s later.
KillWait=2
OverTimeLimit=0
InactiveLimit=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory Gres=gpu:fakegpu:1 State=UNKNOWN
PartitionName=cpu Nodes=$node Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$node MaxTime=INFINITE State=UP
EOF
    # A GPU without a device: with File=/dev/null SLURM accepts it; without File the node drains.
    echo "NodeName=$node Name=gpu Type=fakegpu File=/dev/null" >"$DIR/etc/gres.conf"

    start slurmdbd "$sbin/slurmdbd" -D
    wait_for slurmdbd 60 sacctmgr -n list cluster
    sacctmgr -i add cluster posetransfer >/dev/null
    sacctmgr -i add account posetransfer Description=tests Organization=tests >/dev/null
    sacctmgr -i add user "$(id -un)" Account=posetransfer DefaultAccount=posetransfer >/dev/null

    start slurmctld "$sbin/slurmctld" -D -i
    wait_for slurmctld 60 scontrol ping
    start slurmd "$sbin/slurmd" -D -N "$node"
    wait_for "node $node idle" 60 bash -c "[[ \$(sinfo -h -n '$node' -p cpu -o %t) == idle ]]"

    # The jobstep plugin strips every SLURM_* variable (SLURM_CONF too) before its nested srun; this srun,
    # first on PATH inside jobs (sbatch exports the environment), puts the configuration back.
    cat >"$DIR/bin/srun" <<EOF
#!/bin/sh
SLURM_CONF='$conf' exec /usr/bin/srun "\$@"
EOF
    chmod 755 "$DIR/bin/srun"
    cat >"$DIR/env.sh" <<EOF
# source this to use the cluster under $DIR
export SLURM_CONF='$conf'
export PATH='$DIR/bin':"\$PATH"
EOF
    echo "slurm ready: $DIR/env.sh"
    # Stay up until told to stop (or until whoever started us is gone); the traps stop the daemons.
    local parent=$PPID
    while kill -0 "$parent" 2>/dev/null; do
        sleep 1 &
        wait $! || true
        local index
        for index in "${!PIDS[@]}"; do
            kill -0 "${PIDS[index]}" 2>/dev/null || fail "${NAMES[index]} exited unexpectedly"
        done
    done
}

case "${1:-}" in
install) install_packages ;;
run)
    [[ $# -eq 2 ]] || { echo "usage: $0 run DIR" >&2 && exit 2; }
    run_cluster "$2"
    ;;
*)
    echo "usage: $0 install | run DIR" >&2
    exit 2
    ;;
esac
