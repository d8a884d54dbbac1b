/*
 * gateway_ops.pml: the multi-process protocol of gateway-lock's operations (issue 4), for spin.
 * Read it beside spec/invariants.md (OPS-*) and spec/model/README.md. `just model` checks it.
 *
 * Who is in it
 *   - the kernel's port table: listening[p] (the bound, listening socket IS the lock, LOCK-1);
 *   - H0: the process holding the port at the start, chosen by init: a gateway of this user, a
 *     gateway of another user, or a foreign process (not a gateway) of this user;
 *   - W1, W2: `gateway run --wait` (waiters);
 *   - REP: `gateway run --replace --wait` (a replacer). Its first half (probe, verify, SIGTERM,
 *     wait until released) is exactly `gateway stop`, so `stop` needs no process of its own;
 *   - the environment: SIGKILL any process at any point (the kernel then closes its socket),
 *     SIGSTOP any process at any point, SIGCONT it later (bounded numbers, so that fairness means
 *     something).
 *
 * What a real process does in one atomic step here
 *   - bind+listen: the kernel lets exactly one socket listen on host:port (lock::bind, LOCK-5/6);
 *   - kill(pid, SIGTERM): sets term[pid]; a dead pid ignores it;
 *   - probe (probe::probe): a holder "answers /healthz as a live gateway" iff it runs, is not
 *     stopped, is a gateway, listens, and has not begun shutdown. The pid it reports is its own
 *     (the real code also checks it against /proc, stop::verify).
 * Not modelled: pid reuse between the probe and the signal (a window of microseconds; the real
 * code keeps it that small), time (timeouts are a nondeterministic "give up").
 */

#define NPROC   4
#define H0      0   /* first holder: a gateway (of this user or another) or a foreign process */
#define W1      1   /* gateway run --wait */
#define W2      2   /* gateway run --wait */
#define REP     3   /* gateway run --replace --wait (its first half is `gateway stop`) */

#define ME_UID    1
#define OTHER_UID 2

#define MAX_KILLS 1
#define MAX_STOPS 1

bool listening[NPROC];   /* kernel: p's socket listens on the address */
bool alive[NPROC];
bool stopped[NPROC];     /* SIGSTOPped: takes no step, answers nothing */
bool term[NPROC];        /* SIGTERM received */
bool is_gateway[NPROC];
byte uid[NPROC];
bool waiting[NPROC];     /* in the wait loop of --wait / --replace */
bool signalled[NPROC];   /* someone sent p SIGTERM (for the safety claim below) */
byte kills = 0;
byte stops = 0;

#define runs(p)  (alive[p] && !stopped[p])
#define free     (!listening[0] && !listening[1] && !listening[2] && !listening[3])
#define nlisten  (listening[0] + listening[1] + listening[2] + listening[3])
#define answers(p) (runs(p) && is_gateway[p] && listening[p] && !term[p])
/* some waiter could take the port: running, not stopped, in its wait loop */
#define can_take (runs(W1) && waiting[W1] || runs(W2) && waiting[W2] || runs(REP) && waiting[REP])

/* The kernel's bind+listen: succeeds only if nobody listens (LOCK-1, LOCK-6). */
#ifndef BUG_SPLIT_BIND
inline try_take(me, ok) {
  atomic {
    if
    :: free -> listening[me] = true; ok = true
    :: else -> ok = false
    fi
  }
}
#else
/* Mutant: "check the port, then bind" as two steps (a PID-file or probe-then-bind lock). */
inline try_take(me, ok) {
  if
  :: free -> listening[me] = true; ok = true
  :: else -> ok = false
  fi
}
#endif

/* A gateway holding the port: serve until SIGTERM, drain (listener open, not accepting), then
 * release the listener as the last act (REL-4) and exit. */
inline serve(me) {
  runs(me) && term[me];
  runs(me) -> listening[me] = false;
  runs(me) -> alive[me] = false
}

/* --wait: retry the bind whenever the holder may be gone (the watched connection closed, or the
 * poll fallback fired). Waking is modelled as "the port is free at some moment"; a waiter may
 * also give up (its --wait bound passed), which ends in the normal lock error. */
inline wait_and_take(me) {
  waiting[me] = true;
  do
  :: runs(me) -> try_take(me, took);
     if
     :: took -> waiting[me] = false; break
#ifndef BUG_NO_WAKE
     :: else -> runs(me) && free   /* woken: the holder's connection closed / poll */
#else
     :: else -> runs(me) && false  /* mutant: never woken again */
#endif
     fi
  :: runs(me) -> waiting[me] = false; alive[me] = false; goto done   /* --wait bound passed */
  od
}

proctype Holder(byte me) {
  bool took;
  serve(me);
done:
  skip
}

proctype Foreign(byte me) {
  /* Holds the port until killed; never answers /healthz as a gateway. */
end:
  false
}

proctype Waiter(byte me) {
  bool took;
  runs(me) -> try_take(me, took);   /* LOCK-3: the bind is the first act */
  if
  :: took -> skip
  :: else -> wait_and_take(me)
  fi;
  serve(me);
done:
  skip
}

proctype Replacer(byte me) {
  bool took;
  byte h = NPROC;
  runs(me) -> try_take(me, took);
  if
  :: took -> goto serving
  :: else -> skip
  fi;
  /* probe: who listens, and does it answer as a live gateway? */
  atomic {
    runs(me);
    if
    :: answers(H0) -> h = H0
    :: answers(W1) -> h = W1
    :: answers(W2) -> h = W2
    :: else -> h = NPROC   /* free by now, foreign, stopped, draining: nobody to ask */
    fi
  }
  /* stop::verify: same user only; then SIGTERM to that pid, not to "whoever listens now". */
  if
#ifndef BUG_ANY_USER
  :: h < NPROC && uid[h] == uid[me] ->
#else
  :: h < NPROC ->   /* mutant: no same-user check */
#endif
       runs(me) -> atomic {
         assert(is_gateway[h] && uid[h] == uid[me]);   /* OPS-5: never a foreign holder */
         signalled[h] = true;
         if :: alive[h] -> term[h] = true :: else -> skip fi
       }
  :: else -> skip
  fi;
  wait_and_take(me);
serving:
  serve(me);
done:
  skip
}

/* SIGKILL and SIGSTOP/SIGCONT at any point, to anyone. */
#define KILL(p) atomic { kills < MAX_KILLS && alive[p] -> alive[p] = false; listening[p] = false; kills++ }
#define STOPIT(p) atomic { stops < MAX_STOPS && alive[p] && !stopped[p] -> stopped[p] = true; stops++ }
#define CONT(p) atomic { stopped[p] -> stopped[p] = false }
proctype Environment() {
  do
  :: KILL(H0)   :: KILL(W1)   :: KILL(W2)   :: KILL(REP)      /* the kernel closes the socket */
  :: STOPIT(H0) :: STOPIT(W1) :: STOPIT(W2) :: STOPIT(REP)
  :: CONT(H0)   :: CONT(W1)   :: CONT(W2)   :: CONT(REP)
  :: break
  od
}

init {
  atomic {
    is_gateway[W1] = true; is_gateway[W2] = true; is_gateway[REP] = true;
    uid[W1] = ME_UID; uid[W2] = ME_UID; uid[REP] = ME_UID;
    alive[H0] = true; listening[H0] = true;
    /* the first holder: a gateway of this user, a gateway of another user, or a foreign process
     * (of this user: being of the same user must not make it a target) */
    if
    :: is_gateway[H0] = true; uid[H0] = ME_UID; run Holder(H0)
    :: is_gateway[H0] = true; uid[H0] = OTHER_UID; run Holder(H0)
    :: is_gateway[H0] = false; uid[H0] = ME_UID; run Foreign(H0)
    fi;
    alive[W1] = true; alive[W2] = true; alive[REP] = true;
    run Waiter(W1); run Waiter(W2); run Replacer(REP);
    run Environment()
  }
}

/* OPS-M1 (LOCK-1): never two holders, whatever is killed or stopped when. */
ltl one_holder { [] (nlisten <= 1) }

/* OPS-M2: a foreign process or another user's gateway is never signalled. */
ltl no_foreign_signal { [] (!(signalled[H0] && (!is_gateway[H0] || uid[H0] != ME_UID))) }

/* OPS-M3 (liveness, under weak fairness): once the port is free while some waiter can still take
 * it, the port is eventually taken again (or no waiter can take it any more: all killed, stopped
 * for good, or gave up). */
ltl taken { [] ((free && can_take) -> <> (!free || !can_take)) }
