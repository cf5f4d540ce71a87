#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for tests and CI (Debian 12, root, no systemd).
#
#   bash slurm/local-cluster.sh up        # install what is missing, start daemons, wait until usable
#   bash slurm/local-cluster.sh status    # one line; exit 0 when up, 3 when down
#   bash slurm/local-cluster.sh down      # cancel every job, stop only the daemons this script started
#   bash slurm/local-cluster.sh restart   # down + up (fresh state: job ids restart at 1)
#
# CI use:  trap 'bash slurm/local-cluster.sh down' EXIT; bash slurm/local-cluster.sh up
#
# What it runs: munged, a private MariaDB (port 3307, datadir under the state dir, never
# /var/lib/mysql), slurmdbd (so sacct works, which submitit needs to see cancelled jobs),
# slurmctld and slurmd, each detached with setsid and recorded as `name pid exe` in $BASE/pids.
# `down` signals only those PIDs, and only while /proc/PID/exe still matches.
# Partition `debug` holds the one node (the short hostname), described by `slurmd -C`.
#
# Environment:
#   HEAL_BATCH_SLURM_BASE        state dir (default /tmp/heal-batch-slurm), wiped on every fresh `up`
#   HEAL_BATCH_SLURM_ACCOUNTING  1 (default) runs slurmdbd + MariaDB; 0 skips them (no sacct).
#                                A change while up needs `restart`.
set -euo pipefail

BASE=${HEAL_BATCH_SLURM_BASE:-/tmp/heal-batch-slurm}
ACCOUNTING=${HEAL_BATCH_SLURM_ACCOUNTING:-1}
CLUSTER=heallocal
PARTITION=debug
PIDS=$BASE/pids
MARKER=$BASE/.heal-batch-slurm
ETC=/etc/slurm
DB_PORT=3307
DBD_PORT=6819
DB_SOCK=$BASE/mysql/mysqld.sock

log() { printf 'local-cluster: %s\n' "$*" >&2; }

die() {
	log "error: $*"
	exit 1
}

need_root() {
	[[ $EUID -eq 0 ]] || die "needs root: it installs packages and starts system daemons"
}

# Serialise concurrent runs; fd 9 is closed in every daemon so the lock dies with this script.
take_lock() {
	[[ $BASE == /* && $BASE != / ]] || die "HEAL_BATCH_SLURM_BASE must be an absolute path, got '$BASE'"
	mkdir -p "$(dirname "$BASE")"
	exec 9>"$BASE.lock"
	flock -w 300 9 || die "another local-cluster.sh held $BASE.lock for 300 s"
}

# /proc/PID/exe of a live process; empty for dead or zombie processes.
exe_of() {
	local exe
	exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 0
	printf '%s' "${exe% (deleted)}"
}

scontrol_up() { scontrol ping 2>/dev/null | grep -q 'is UP'; }

# True when every recorded daemon is alive (root can check exe) and slurmctld answers.
is_up() {
	if [[ $EUID -eq 0 ]]; then
		[[ -s $PIDS ]] || return 1
		local name pid exe
		while read -r name pid exe; do
			[[ $(exe_of "$pid") == "$exe" ]] || return 1
		done <"$PIDS"
	fi
	scontrol_up
}

summary() {
	local node acct=off
	node=$(sinfo -h -N -o '%N %T %c cpus' 2>/dev/null | head -n1)
	grep -q '^AccountingStorageType=accounting_storage/slurmdbd' "$ETC/slurm.conf" 2>/dev/null && acct=on
	printf 'cluster %s, partition %s, node %s, accounting %s, base %s' \
		"$CLUSTER" "$PARTITION" "${node:-?}" "$acct" "$BASE"
}

# ---------------------------------------------------------------- install

packages() {
	local pkgs=(slurm-wlm munge)
	[[ $ACCOUNTING == 1 ]] && pkgs+=(slurmdbd mariadb-server mariadb-client)
	printf '%s\n' "${pkgs[@]}"
}

install_missing() {
	local missing=() p
	for p in $(packages); do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
	log "installing ${missing[*]}"
	# No systemd here: keep apt from starting munge/slurm/mariadb through init scripts.
	local made_policy=0
	if [[ ! -e /usr/sbin/policy-rc.d ]]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 755 /usr/sbin/policy-rc.d
		made_policy=1
		trap 'rm -f /usr/sbin/policy-rc.d' EXIT
	fi
	local apt_log=$BASE.apt.log
	if ! {
		apt-get update -o DPkg::Lock::Timeout=300 &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
				-o DPkg::Lock::Timeout=300 "${missing[@]}"
	} >"$apt_log" 2>&1; then
		tail -n 20 "$apt_log" >&2
		die "apt-get failed; full log in $apt_log"
	fi
	if [[ $made_policy == 1 ]]; then
		rm -f /usr/sbin/policy-rc.d
		trap - EXIT
	fi
}

# ---------------------------------------------------------------- state and configs

fresh_state() {
	if [[ -e $BASE && ! -e $MARKER && -n $(ls -A "$BASE") ]]; then
		die "$BASE exists and was not made by this script; set HEAL_BATCH_SLURM_BASE elsewhere"
	fi
	rm -rf "$BASE"
	mkdir -p "$BASE"/{ctld,slurmd,log,run,mysql}
	touch "$MARKER"
	chown slurm:slurm "$BASE"/{ctld,log,run}
}

node_line() {
	local line mem
	line=$(slurmd -C | head -n1)
	mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$line")
	[[ -n $mem ]] || die "could not read RealMemory from 'slurmd -C': $line"
	# Leave 10 % for the daemons and the test runner.
	printf '%s NodeAddr=127.0.0.1 State=UNKNOWN\n' "${line/RealMemory=$mem/RealMemory=$((mem * 9 / 10))}"
}

write_slurm_conf() {
	local node cpus mem defmem storage=accounting_storage/none host
	host=$(hostname -s)
	node=$(node_line)
	cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$node")
	mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
	# Without DefMemPerCPU a job with no --mem books the whole node and jobs run one at a time.
	defmem=$((mem / cpus < 1024 ? mem / cpus : 1024))
	[[ $ACCOUNTING == 1 ]] && storage=accounting_storage/slurmdbd
	mkdir -p "$ETC"
	cat >"$ETC/slurm.conf" <<EOF
# Written by slurm/local-cluster.sh; regenerated on every fresh 'up'.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
# Requeue waits cred_expire (default 120 s) before the job can start again.
AuthInfo=cred_expire=10
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$BASE/ctld
SlurmdSpoolDir=$BASE/slurmd
SlurmctldPidFile=$BASE/run/slurmctld.pid
SlurmdPidFile=$BASE/run/slurmd.pid
SlurmctldLogFile=$BASE/log/slurmctld.log
SlurmdLogFile=$BASE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$defmem
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=5,sched_interval=10
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=$storage
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
JobCompType=jobcomp/none
MinJobAge=300
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
$node
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

write_slurmdbd_conf() {
	cat >"$ETC/slurmdbd.conf" <<EOF
# Written by slurm/local-cluster.sh.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=slurm
PidFile=$BASE/run/slurmdbd.pid
LogFile=$BASE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmlocal
StorageLoc=slurm_acct_db
EOF
	chown slurm:slurm "$ETC/slurmdbd.conf"
	chmod 600 "$ETC/slurmdbd.conf"
}

# ---------------------------------------------------------------- daemons

# spawn NAME BINARY ARGV...: start detached, wait for the exec, record `name pid exe`.
spawn() {
	local name=$1 exe
	exe=$(readlink -f "$2")
	shift 2
	setsid "$@" </dev/null >>"$BASE/log/$name.out" 2>&1 9>&- &
	local pid=$! i
	# A background job of a non-interactive shell is no group leader, so setsid (and setpriv)
	# exec in place: $! becomes the daemon itself once the exec chain finishes.
	for i in $(seq 50); do
		[[ $(exe_of "$pid") == "$exe" ]] && break
		sleep 0.1
	done
	[[ $(exe_of "$pid") == "$exe" ]] || fail_start "$name" "did not start"
	echo "$name $pid $exe" >>"$PIDS"
}

fail_start() {
	local f
	for f in "$BASE/log/$1".*; do
		[[ -e $f ]] && { log "--- tail of $f"; tail -n 15 "$f" >&2; }
	done
	die "$1 $2; logs in $BASE/log"
}

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
	local name=$1 secs=$2 end=$((SECONDS + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		((SECONDS < end)) || fail_start "$name" "not ready after ${secs}s ($*)"
		sleep 0.2
	done
}

munge_ok() { munge -n | unmunge; }

start_munged() {
	if munge_ok >/dev/null 2>&1; then
		log "using the munged that is already running"
		return 0
	fi
	if [[ ! -s /etc/munge/munge.key ]]; then
		mungekey --create --keyfile=/etc/munge/munge.key
		chown munge:munge /etc/munge/munge.key
		chmod 400 /etc/munge/munge.key
	fi
	mkdir -p /run/munge
	chown munge:munge /run/munge
	# setpriv execs (runuser would fork and leave $! pointing at itself).
	spawn munged /usr/sbin/munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
	wait_for munged 20 munge_ok
}

db_sql() { mariadb --no-defaults --socket="$DB_SOCK" -uroot -e "$1"; }

start_mariadb() {
	local data=$BASE/mysql/data
	mkdir -p "$data"
	chown -R mysql:mysql "$BASE/mysql"
	mariadb-install-db --no-defaults --user=mysql --datadir="$data" --skip-test-db \
		--auth-root-authentication-method=socket >"$BASE/log/mariadb.install" 2>&1 ||
		fail_start mariadb "install-db failed"
	# The InnoDB settings are what slurmdbd asks for; durability is not needed for test state.
	spawn mariadb /usr/sbin/mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql \
		--datadir="$data" --port=$DB_PORT --bind-address=127.0.0.1 --socket="$DB_SOCK" \
		--pid-file="$BASE/mysql/mariadbd.pid" --skip-name-resolve --skip-log-bin \
		--performance-schema=OFF --innodb-buffer-pool-size=128M --innodb-log-file-size=64M \
		--innodb-lock-wait-timeout=900 --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0
	wait_for mariadb 60 mariadb-admin --no-defaults --socket="$DB_SOCK" ping
	db_sql "CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmlocal';
		CREATE USER 'slurm'@'localhost' IDENTIFIED BY 'slurmlocal';
		GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
		GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_slurmdbd() {
	write_slurmdbd_conf
	spawn slurmdbd /usr/sbin/slurmdbd /usr/sbin/slurmdbd -D
	wait_for slurmdbd 60 port_open "$DBD_PORT"
}

node_idle() { [[ $(sinfo -h -N -o %T 2>/dev/null) == idle ]]; }

# sacct answers and slurmctld has registered the cluster (it does so by itself, 1-2 s).
accounting_ready() {
	sacct -n -X -a -S now-1minutes >/dev/null &&
		[[ -n $(sacctmgr -n -P show cluster "$CLUSTER" format=ControlHost) ]]
}

start_slurm() {
	spawn slurmctld /usr/sbin/slurmctld /usr/sbin/slurmctld -D
	wait_for slurmctld 60 scontrol_up
	spawn slurmd /usr/sbin/slurmd /usr/sbin/slurmd -D
	wait_for slurmd 60 node_idle
	[[ $ACCOUNTING == 1 ]] && wait_for slurmdbd 60 accounting_ready
	return 0
}

# ---------------------------------------------------------------- stop

cancel_jobs() {
	scontrol_up || return 0
	local ids i
	ids=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
	[[ -n ${ids// /} ]] || return 0
	log "cancelling jobs: $ids"
	# shellcheck disable=SC2086
	scancel $ids || true
	# Wait for COMPLETING jobs so no slurmstepd or job process outlives slurmd.
	for i in $(seq 75); do
		[[ -z $(squeue -h -o %A 2>/dev/null) ]] && return 0
		sleep 0.2
	done
	log "warning: jobs still listed after 15 s: $(squeue -h -o '%A %T' | tr '\n' ' ')"
}

stop_one() {
	local name=$1 pid=$2 exe=$3 i
	[[ $(exe_of "$pid") == "$exe" ]] || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for i in $(seq 150); do
		[[ $(exe_of "$pid") == "$exe" ]] || return 0
		sleep 0.1
	done
	log "$name ($pid) ignored SIGTERM for 15 s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

stop_recorded() {
	local name pid exe
	[[ -s $PIDS ]] || return 0
	# Reverse start order: slurmd, slurmctld, slurmdbd, mariadb, munged.
	tac "$PIDS" | while read -r name pid exe; do stop_one "$name" "$pid" "$exe"; done
	rm -f "$PIDS"
}

# ---------------------------------------------------------------- commands

cmd_up() {
	if [[ $EUID -ne 0 ]] && is_up; then
		echo "slurm: already up ($(summary))"
		return 0
	fi
	need_root
	take_lock
	if is_up; then
		echo "slurm: already up ($(summary))"
		return 0
	fi
	if [[ -s $PIDS ]]; then
		log "found a partial cluster; stopping its recorded daemons first"
		stop_recorded
	fi
	local t0=$SECONDS
	install_missing
	fresh_state
	write_slurm_conf
	start_munged
	if [[ $ACCOUNTING == 1 ]]; then
		start_mariadb
		start_slurmdbd
	fi
	start_slurm
	echo "slurm: up in $((SECONDS - t0))s ($(summary))"
}

cmd_down() {
	need_root
	take_lock
	if [[ ! -s $PIDS ]]; then
		echo "slurm: nothing to stop (no $PIDS)"
		return 0
	fi
	cancel_jobs
	stop_recorded
	echo "slurm: down"
}

cmd_status() {
	if is_up; then
		echo "slurm: up ($(summary))"
	else
		echo "slurm: down (base $BASE)"
		return 3
	fi
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
restart)
	cmd_down
	exec 9>&-
	cmd_up
	;;
*)
	echo "usage: bash slurm/local-cluster.sh up|down|status|restart" >&2
	exit 2
	;;
esac
