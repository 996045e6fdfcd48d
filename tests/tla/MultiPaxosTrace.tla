--------------------------- MODULE MultiPaxosTrace ---------------------------
(***************************************************************************)
(* Trace validation: is one run of the real core a behaviour of            *)
(* MultiPaxos.tla?                                                         *)
(*                                                                         *)
(* trace_export.py runs the simulator (the core itself, with lost,         *)
(* delayed and duplicated messages and crashes) and writes                 *)
(* MultiPaxosTraceData.tla: Trace, the acceptors' and learners' steps in   *)
(* the order they happened (each Promise and each accept, with the         *)
(* message it produced; each compaction, with the new point; each persist  *)
(* that moved a learner's durable prefix, with the new prefix), and        *)
(* CorePrepares and CoreAccepts, every Prepare and Accept the proposers    *)
(* sent. TLC looks for a behaviour of the spec in which the acceptors and  *)
(* learners take exactly those steps in that order, with any proposer      *)
(* steps in between that send only what the core sent (plus Prepares of    *)
(* the rounds a core proposer skipped, which nobody answers, and the       *)
(* Accepts the core skips for slots it knows decided). It reports          *)
(* "Invariant TraceUnfinished is violated" when it reaches the end of the  *)
(* trace: the run is accepted. "No error has been found" means the core    *)
(* took a step the spec does not allow.                                    *)
(***************************************************************************)
EXTENDS MultiPaxos, MultiPaxosTraceData, Sequences

VARIABLE i    \* the next event of Trace to match

traceVars == <<vars, i>>

\* Every ballot some core Prepare or Accept used.
CoreBallots == {m.bal : m \in CorePrepares \cup CoreAccepts}

\* The proposers send only what the core sent, with two exceptions: the
\* Prepares of rounds a core proposer jumped over (from slot 0, nobody
\* answers them), and, for a (ballot, slot) the core never proposed in,
\* whatever BecomeLeader adopts (the core skips slots it knows decided) or,
\* below some acceptor's compaction point and below a slot the core did
\* propose in with that ballot, a no-op Propose (a Nack carrying the point
\* moves the core's leader past the slots below it).
ProposersAsCore ==
    /\ \A m \in prepareMsgs' : m \in CorePrepares \/ (m.bal \notin CoreBallots /\ m.first = 0)
    /\ \A m \in acceptMsgs' :
          \/ m \in CoreAccepts
          \/ ~\E c \in CoreAccepts : c.bal = m.bal /\ c.slot = m.slot

\* Init, except that every value the run used is submitted from the start.
TraceInit ==
    /\ prepareMsgs = {} /\ promiseMsgs = {} /\ acceptMsgs = {} /\ acceptedMsgs = {}
    /\ aPromised = [a \in Acceptors |-> Zero]
    /\ aVotes = [a \in Acceptors |-> [s \in Slots |-> NoVote]]
    /\ aCompacted = [a \in Acceptors |-> 0]
    /\ lStored = [l \in Learners |-> 0]
    /\ pRound = [p \in Proposers |-> 0]
    /\ pBallot = [p \in Proposers |-> Zero]
    /\ pPhase = [p \in Proposers |-> "follower"]
    /\ pFirst = [p \in Proposers |-> 0]
    /\ pNext = [p \in Proposers |-> 0]
    /\ submitted = Values
    /\ i = 1

ProposerStep ==
    /\ \E p \in Proposers :
          \/ StartPhase1(p)
          \/ BecomeLeader(p)
          \/ Propose(p) /\ \A m \in acceptMsgs' \ acceptMsgs :
                              \/ m \in CoreAccepts
                              \/ /\ m.val = NoOp
                                 /\ \E a \in Acceptors : m.slot < aCompacted[a]
                                 /\ ~\E c \in CoreAccepts : c.bal = m.bal /\ c.slot = m.slot
                                 /\ \E c \in CoreAccepts : c.bal = m.bal /\ c.slot > m.slot
    /\ ProposersAsCore
    /\ UNCHANGED i

\* The next recorded step of an acceptor or a learner.
RecordedStep ==
    /\ i <= Len(Trace)
    /\ LET e == Trace[i] IN
        CASE e.kind = "promise" ->
                 /\ Promise(e.node)
                 /\ promiseMsgs' = promiseMsgs \cup {e.msg}
          [] e.kind = "accept" ->
                 /\ Accept(e.node)
                 /\ acceptedMsgs' = acceptedMsgs \cup {e.msg}
                 /\ aVotes'[e.node][e.msg.slot] = [bal |-> e.msg.bal, val |-> e.msg.val]
          [] e.kind = "compact" ->
                 /\ Compact(e.node)
                 /\ aCompacted'[e.node] = e.msg
          [] e.kind = "store" ->
                 /\ Store(e.node)
                 /\ lStored'[e.node] = e.msg
    /\ i' = i + 1

TraceNext == ProposerStep \/ RecordedStep

TraceSpec == TraceInit /\ [][TraceNext]_traceVars

\* Violated once the whole trace is matched: the run is accepted.
TraceUnfinished == i <= Len(Trace)
=============================================================================
