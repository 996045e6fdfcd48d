----------------------------- MODULE MultiPaxos -----------------------------
(***************************************************************************)
(* The Multi-Paxos protocol of paxos_agents/core, as the core runs it.     *)
(*                                                                         *)
(* Not the textbook algorithm: every action below names the core function  *)
(* it models. "PMS x.y" cites Lamport, "Paxos Made Simple" (2001).         *)
(*                                                                         *)
(*  - Ballots are <<round, node>> compared lexicographically (ids.py).     *)
(*  - A proposer runs phase 1 ONCE for every slot >= a first slot          *)
(*    (Prepare.first_slot), and on a majority of Promises adopts, per      *)
(*    slot, the value of the highest ballot reported and fills the holes   *)
(*    below the highest reported slot with the no-op (PMS 3).              *)
(*  - Acceptors promise only a strictly higher ballot, accept at or above  *)
(*    the promise and raise it, and answer anything else with a Nack       *)
(*    (PMS 2.2, 2.3).                                                      *)
(*  - Learners decide a slot once a majority of acceptors Accepted it in   *)
(*    ONE ballot (PMS 2.3).                                                *)
(*  - Crash-restart keeps exactly what the core persists (ready.py,        *)
(*    PMS 2.5): the acceptor's promise and votes, the learner's decisions, *)
(*    the proposer's highest round.                                        *)
(*  - Messages are a set that only grows: a message once sent can be       *)
(*    received any number of times, in any order, or never; that is loss,  *)
(*    duplication and reordering (PMS 2.1: "messages can take arbitrarily  *)
(*    long to be delivered, can be duplicated, and can be lost").          *)
(*                                                                         *)
(* Timers, heartbeats, leader forwarding, batching and windows decide only *)
(* WHEN a proposer acts, never WHAT it may send, so they are replaced by   *)
(* nondeterminism: any proposer may start a new phase 1 at any time, from  *)
(* any slot, with any round above its own (the core's timeout, a nack or   *)
(* heartbeat with a higher ballot, and a learner's Retry all end in        *)
(* Proposer._start_election). That over-approximates the core: every core *)
(* run is a behaviour of this spec, so the invariants hold for the core    *)
(* too (within the model's bounds).                                        *)
(*                                                                         *)
(* The constant Bug plants one of the core's known bugs (config.PLANTABLE) *)
(* so that the test suite can show TLC catches each of them:               *)
(*   "None"                  the core as it is;                            *)
(*   "ForgetOnRestart"       an acceptor restarts with an empty record     *)
(*                           (plant "forget-promise");                     *)
(*   "CrossBallotLearner"    a learner counts votes for a slot across      *)
(*                           ballots (plant "cross-ballot-learner");       *)
(*   "ReuseBallot"           a proposer restarts without its round, and a  *)
(*                           Nack of its ballot counts as an empty Promise *)
(*                           (plant "reuse-ballot");                       *)
(*   "IgnorePromisedValues"  a new leader ignores the votes the Promises   *)
(*                           report (plant "ignore-promised-value");       *)
(*   "AcceptWithoutPromise"  an acceptor accepts any ballot and never      *)
(*                           raises its promise (plant                     *)
(*                           "accept-without-promise");                    *)
(*   "LoseRound"             a proposer restarts without its round, with   *)
(*                           nacks handled correctly: what the docstring   *)
(*                           of proposer.py claims is safe. It is not: a   *)
(*                           delayed or duplicated Promise of the old      *)
(*                           incarnation completes the new incarnation's   *)
(*                           phase 1 under the reused ballot (see          *)
(*                           README.md beside this file).                  *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets, TLC

CONSTANTS
    Proposers,  \* proposer node ids: positive naturals, ordered like the core's strings
    Acceptors,  \* acceptor ids (model values)
    Learners,   \* learner ids (model values)
    Values,     \* the commands clients may submit (model values)
    NoOp,       \* the hole-filling no-op (commands.NOOP, the empty batch)
    None,       \* "nothing": no vote, no decision
    NumSlots,   \* slots 0 .. NumSlots-1
    MaxRound,   \* rounds 1 .. MaxRound
    Bug         \* the planted bug, "None" for the core as it is

Bugs == {"None", "ForgetOnRestart", "CrossBallotLearner", "ReuseBallot",
         "IgnorePromisedValues", "AcceptWithoutPromise", "LoseRound"}

ASSUME /\ Proposers \subseteq Nat \ {0}
       /\ Acceptors # {} /\ Learners # {}
       /\ NoOp \notin Values /\ None \notin Values \cup {NoOp}
       /\ NumSlots \in Nat \ {0} /\ MaxRound \in Nat \ {0}
       /\ Bug \in Bugs

-----------------------------------------------------------------------------
(* Ballots: ids.Ballot, a (round, node_id) pair compared as a tuple.       *)
(* Distinct proposers draw from disjoint sets of ballots (PMS 2.5).        *)

Ballots == (1..MaxRound) \X Proposers
Zero == <<0, 0>>                   \* ids.ZERO_BALLOT: below every real ballot

Less(b, c) == \/ b[1] < c[1]
              \/ b[1] = c[1] /\ b[2] < c[2]
LessEq(b, c) == b = c \/ Less(b, c)

Slots == 0 .. NumSlots - 1
AnyValue == Values \cup {NoOp}     \* what a slot can decide
Max(S) == CHOOSE x \in S : \A y \in S : y <= x

\* A majority of acceptors (Membership.majority). The core acts the moment
\* the count REACHES the majority, so exactly-majority sets suffice.
Quorums == {Q \in SUBSET Acceptors : Cardinality(Q) = Cardinality(Acceptors) \div 2 + 1}

\* messages.Vote without its slot: what an acceptor accepted in one slot.
NoVote == [bal |-> Zero, val |-> None]
Votes == {NoVote} \cup [bal : Ballots, val : AnyValue]

-----------------------------------------------------------------------------
(* Messages (messages.py). Only the fields the protocol reads are kept:    *)
(* a Promise and a Nack go to the owner of their ballot, so no dst; a      *)
(* Prepare and an Accept go to every acceptor, an Accepted to the proposer *)
(* and to every learner, so one message stands for all copies. A Nack's    *)
(* `promised` only tunes the next round, which is nondeterministic here.   *)

PrepareMsgs  == [type : {"prepare"}, bal : Ballots, first : Slots]
PromiseMsgs  == [type : {"promise"}, src : Acceptors, bal : Ballots, first : Slots,
                 votes : [Slots -> Votes]]
AcceptMsgs   == [type : {"accept"}, bal : Ballots, slot : Slots, val : AnyValue]
AcceptedMsgs == [type : {"accepted"}, src : Acceptors, bal : Ballots, slot : Slots,
                 val : AnyValue]
NackMsgs     == [type : {"nack"}, src : Acceptors, bal : Ballots]
Messages == PrepareMsgs \cup PromiseMsgs \cup AcceptMsgs \cup AcceptedMsgs \cup NackMsgs

VARIABLES
    msgs,       \* every message ever sent
    \* acceptor.Acceptor, all persisted (ready.Record.promised, .votes):
    aPromised,  \* acceptor -> the highest ballot promised or accepted
    aVotes,     \* acceptor -> slot -> its last vote in that slot
    \* proposer.Proposer:
    pRound,     \* proposer -> highest round used; persisted (Record.round)
    pBallot,    \* proposer -> its current ballot (volatile)
    pPhase,     \* proposer -> "follower" | "candidate" | "leader" (volatile)
    pFirst,     \* proposer -> first slot of its current phase 1 (volatile)
    pNext,      \* proposer -> leader's next fresh slot, next_slot (volatile)
    \* learner.Learner:
    lDecided,   \* learner -> slot -> decided value or None; persisted (Record.decisions)
    \* history, for Validity:
    submitted   \* the values clients have submitted so far

acceptorVars == <<aPromised, aVotes>>
proposerVars == <<pRound, pBallot, pPhase, pFirst, pNext>>
vars == <<msgs, aPromised, aVotes, pRound, pBallot, pPhase, pFirst, pNext,
          lDecided, submitted>>

Send(m) == msgs' = msgs \cup {m}
SendAll(S) == msgs' = msgs \cup S

TypeOK ==
    /\ msgs \subseteq Messages
    /\ aPromised \in [Acceptors -> Ballots \cup {Zero}]
    /\ aVotes \in [Acceptors -> [Slots -> Votes]]
    /\ pRound \in [Proposers -> 0..MaxRound]
    /\ pBallot \in [Proposers -> Ballots \cup {Zero}]
    /\ pPhase \in [Proposers -> {"follower", "candidate", "leader"}]
    /\ pFirst \in [Proposers -> Slots]
    /\ pNext \in [Proposers -> 0..NumSlots]
    /\ lDecided \in [Learners -> [Slots -> AnyValue \cup {None}]]
    /\ submitted \subseteq Values

Init ==
    /\ msgs = {}
    /\ aPromised = [a \in Acceptors |-> Zero]
    /\ aVotes = [a \in Acceptors |-> [s \in Slots |-> NoVote]]
    /\ pRound = [p \in Proposers |-> 0]
    /\ pBallot = [p \in Proposers |-> Zero]
    /\ pPhase = [p \in Proposers |-> "follower"]
    /\ pFirst = [p \in Proposers |-> 0]
    /\ pNext = [p \in Proposers |-> 0]
    /\ lDecided = [l \in Learners |-> [s \in Slots |-> None]]
    /\ submitted = {}

-----------------------------------------------------------------------------
(* Clients (Node.propose): a value becomes proposable once submitted.       *)

Submit(v) ==
    /\ v \notin submitted
    /\ submitted' = submitted \cup {v}
    /\ UNCHANGED <<msgs, acceptorVars, proposerVars, lDecided>>

-----------------------------------------------------------------------------
(* Phase 1a (PMS 2.2; PMS 3 for "all slots from first").                    *)
(* Proposer._start_election: pick a round above every one used, persist it *)
(* (the Prepare is sent after the persist), Prepare every slot >= first.   *)
(* The core picks max(round, highest round seen) + 1 and as first slot its *)
(* first undecided one (or a lower slot a learner's Retry asks for); here  *)
(* any higher round and any first slot, which covers both.                 *)

StartPhase1(p) ==
    \E r \in (pRound[p] + 1) .. MaxRound, f \in Slots :
        /\ pRound' = [pRound EXCEPT ![p] = r]
        /\ pBallot' = [pBallot EXCEPT ![p] = <<r, p>>]
        /\ pPhase' = [pPhase EXCEPT ![p] = "candidate"]
        /\ pFirst' = [pFirst EXCEPT ![p] = f]
        /\ pNext' = [pNext EXCEPT ![p] = 0]   \* unused until it leads
        /\ Send([type |-> "prepare", bal |-> <<r, p>>, first |-> f])
        /\ UNCHANGED <<acceptorVars, lDecided, submitted>>

(* Phase 1b (PMS 2.2): Acceptor.on_prepare. Promise a STRICTLY higher       *)
(* ballot, reporting the votes in slots >= first; persisted before sent.    *)

Promise(a) ==
    \E m \in msgs :
        /\ m.type = "prepare"
        /\ Less(aPromised[a], m.bal)
        /\ aPromised' = [aPromised EXCEPT ![a] = m.bal]
        /\ Send([type |-> "promise", src |-> a, bal |-> m.bal, first |-> m.first,
                 votes |-> [s \in Slots |-> IF s >= m.first THEN aVotes[a][s]
                                                             ELSE NoVote]])
        /\ UNCHANGED <<aVotes, proposerVars, lDecided, submitted>>

(* Phase 2b (PMS 2.2): Acceptor.on_accept. Accept at or above the promise  *)
(* and raise the promise to it; persist, then tell the proposer and every  *)
(* learner. Planted "AcceptWithoutPromise": no check, no raise.            *)

Accept(a) ==
    \E m \in msgs :
        /\ m.type = "accept"
        /\ IF Bug = "AcceptWithoutPromise"
              THEN UNCHANGED aPromised
              ELSE /\ LessEq(aPromised[a], m.bal)
                   /\ aPromised' = [aPromised EXCEPT ![a] = m.bal]
        /\ aVotes' = [aVotes EXCEPT ![a][m.slot] = [bal |-> m.bal, val |-> m.val]]
        /\ Send([type |-> "accepted", src |-> a, bal |-> m.bal, slot |-> m.slot,
                 val |-> m.val])
        /\ UNCHANGED <<proposerVars, lDecided, submitted>>

(* Acceptor.on_prepare / on_accept, the refusals: a Prepare not strictly    *)
(* above the promise, an Accept below it. The Nack is the "inform the       *)
(* proposer" optimisation of PMS 2.3.                                       *)

Nack(a) ==
    \E m \in msgs :
        /\ \/ m.type = "prepare" /\ LessEq(m.bal, aPromised[a])
           \/ m.type = "accept" /\ Less(m.bal, aPromised[a]) /\ Bug # "AcceptWithoutPromise"
        /\ Send([type |-> "nack", src |-> a, bal |-> m.bal])
        /\ UNCHANGED <<acceptorVars, proposerVars, lDecided, submitted>>

-----------------------------------------------------------------------------
(* Phase 2a, first half (PMS 2.2 P2c, PMS 3): Proposer.on_promise and      *)
(* _become_leader. A candidate counts the Promises whose ballot is its     *)
(* own (the core does NOT compare first_slot) and on a majority becomes    *)
(* leader: in each slot from its first slot up to the highest slot any     *)
(* Promise reported it proposes the value of the highest ballot reported  *)
(* there, or the no-op where nobody reported a vote. The core skips slots  *)
(* it already knows decided; here that is a lost Accept.                   *)

\* What the candidate p counts as Promises of its ballot. Planted
\* "ReuseBallot": a Nack of its ballot counts as a Promise with no votes.
PromisesFor(p) ==
    {m \in msgs : m.type = "promise" /\ m.bal = pBallot[p]}
    \cup (IF Bug = "ReuseBallot"
            THEN {[type |-> "promise", src |-> n.src, bal |-> n.bal, first |-> pFirst[p],
                   votes |-> [s \in Slots |-> NoVote]] :
                  n \in {n \in msgs : n.type = "nack" /\ n.bal = pBallot[p]}}
            ELSE {})

\* The votes the Promises P (one per acceptor of Q) report in slot s.
\* Planted "IgnorePromisedValues": none.
Reported(P, Q, s) ==
    IF Bug = "IgnorePromisedValues" THEN {}
    ELSE {P[a].votes[s] : a \in Q} \ {NoVote}

\* The values the leader may adopt in slot s: the highest-ballot reported
\* value, else the no-op. (Two values can share the highest ballot only if
\* a ballot was reused; the core then takes the first it counted.)
Adoptable(P, Q, s) ==
    LET R == Reported(P, Q, s)
    IN  IF R = {} THEN {NoOp}
        ELSE {w.val : w \in {w \in R : \A u \in R : LessEq(u.bal, w.bal)}}

BecomeLeader(p) ==
    /\ pPhase[p] = "candidate"
    /\ \E Q \in Quorums :
       \E P \in [Q -> PromisesFor(p)] :
        /\ \A a \in Q : P[a].src = a
        /\ LET first == pFirst[p]
               \* next_slot = max(first, highest reported slot + 1)
               next == Max({first} \cup {s + 1 : s \in {s \in Slots : Reported(P, Q, s) # {}}})
               range == first .. (next - 1)
           IN  \E adopt \in {f \in [range -> AnyValue] : \A s \in range : f[s] \in Adoptable(P, Q, s)} :
                /\ pPhase' = [pPhase EXCEPT ![p] = "leader"]
                /\ pNext' = [pNext EXCEPT ![p] = next]
                /\ SendAll({[type |-> "accept", bal |-> pBallot[p], slot |-> s,
                             val |-> adopt[s]] : s \in range})
    /\ UNCHANGED <<acceptorVars, pRound, pBallot, pFirst, lDecided, submitted>>

(* Phase 2a, then on (PMS 3): Proposer._propose_pending and on_retry. The  *)
(* leader proposes in its next fresh slot a submitted value, or the no-op  *)
(* (on_retry fills the slots up to a missing one with no-ops). One value   *)
(* per slot and ballot: next_slot only grows while it leads.               *)

Propose(p) ==
    /\ pPhase[p] = "leader"
    /\ pNext[p] < NumSlots
    /\ \E v \in submitted \cup {NoOp} :
        Send([type |-> "accept", bal |-> pBallot[p], slot |-> pNext[p], val |-> v])
    /\ pNext' = [pNext EXCEPT ![p] = pNext[p] + 1]
    /\ UNCHANGED <<acceptorVars, pRound, pBallot, pPhase, pFirst, lDecided, submitted>>

(* Proposer.on_nack: a Nack of its current ballot makes a candidate or a    *)
(* leader step down. Planted "ReuseBallot": a candidate counts it as a      *)
(* promise (PromisesFor) and a leader ignores it.                          *)

ReceiveNack(p) ==
    /\ Bug # "ReuseBallot"
    /\ pPhase[p] # "follower"
    /\ \E m \in msgs : m.type = "nack" /\ m.bal = pBallot[p]
    /\ pPhase' = [pPhase EXCEPT ![p] = "follower"]
    /\ UNCHANGED <<msgs, acceptorVars, pRound, pBallot, pFirst, pNext, lDecided, submitted>>

-----------------------------------------------------------------------------
(* Learning (PMS 2.3): Learner.on_accepted. A slot is decided once a       *)
(* majority of acceptors Accepted it in ONE ballot. The core tallies       *)
(* voters per (slot, ballot) and decides the value of the Accepted that    *)
(* completes the majority, without comparing the values (sound only if a   *)
(* ballot carries one value per slot: see OneValuePerBallot). Planted      *)
(* "CrossBallotLearner": all ballots of a slot share one tally.            *)
(* A Decide from a proposer (the answer to a Retry) carries what that      *)
(* proposer counted from the same Accepted messages, so it adds nothing.   *)

SameTally(m, n) ==
    /\ n.type = "accepted" /\ n.slot = m.slot
    /\ (Bug = "CrossBallotLearner" \/ n.bal = m.bal)

Learn(l) ==
    \E m \in msgs :
        /\ m.type = "accepted"
        /\ lDecided[l][m.slot] = None
        /\ \E Q \in Quorums :
               /\ m.src \in Q
               /\ \A a \in Q : \E n \in msgs : SameTally(m, n) /\ n.src = a
        /\ lDecided' = [lDecided EXCEPT ![l][m.slot] = m.val]
        /\ UNCHANGED <<msgs, acceptorVars, proposerVars, submitted>>

-----------------------------------------------------------------------------
(* Crash and restart (PMS 2.5; ready.Record; sim.SimCluster._boot). A      *)
(* crash may strike anywhere; what was not persisted is lost with the      *)
(* messages not yet sent, which here is a step never taken or a message    *)
(* never received, so a restart is one step that keeps the persisted      *)
(* state. Crashes are not bounded: the state space is finite regardless.   *)

(* An acceptor persists everything it holds: a restart changes nothing.    *)
(* Planted "ForgetOnRestart": it comes back with an empty record.          *)
RestartAcceptor(a) ==
    /\ Bug = "ForgetOnRestart"
    /\ aPromised' = [aPromised EXCEPT ![a] = Zero]
    /\ aVotes' = [aVotes EXCEPT ![a] = [s \in Slots |-> NoVote]]
    /\ UNCHANGED <<msgs, proposerVars, lDecided, submitted>>

(* A proposer keeps only its round: a follower with no ballot. Planted      *)
(* "ReuseBallot" and "LoseRound": it loses the round too, and so may reuse  *)
(* a ballot it used before.                                                 *)
RestartProposer(p) ==
    /\ pRound' = IF Bug \in {"ReuseBallot", "LoseRound"}
                    THEN [pRound EXCEPT ![p] = 0] ELSE pRound
    /\ pBallot' = [pBallot EXCEPT ![p] = Zero]
    /\ pPhase' = [pPhase EXCEPT ![p] = "follower"]
    /\ pFirst' = [pFirst EXCEPT ![p] = 0]
    /\ pNext' = [pNext EXCEPT ![p] = 0]
    /\ UNCHANGED <<msgs, acceptorVars, lDecided, submitted>>

(* A learner persists its decisions and loses its tallies, which here are  *)
(* recomputed from msgs: a restart changes nothing, so it is no action.    *)

-----------------------------------------------------------------------------
Next ==
    \/ \E v \in Values : Submit(v)
    \/ \E p \in Proposers : StartPhase1(p) \/ BecomeLeader(p) \/ Propose(p)
                            \/ ReceiveNack(p) \/ RestartProposer(p)
    \/ \E a \in Acceptors : Promise(a) \/ Accept(a) \/ Nack(a) \/ RestartAcceptor(a)
    \/ \E l \in Learners : Learn(l)

Spec == Init /\ [][Next]_vars

-----------------------------------------------------------------------------
(* Safety.                                                                 *)

(* Agreement: learners never decide different values in one slot (and a   *)
(* learner never changes its mind: it decides a slot once).                *)
Agreement ==
    \A l1, l2 \in Learners, s \in Slots :
        lDecided[l1][s] # None /\ lDecided[l2][s] # None
            => lDecided[l1][s] = lDecided[l2][s]

(* Validity (PMS 2.1): only a submitted value, or the no-op, is decided.   *)
Validity ==
    \A l \in Learners, s \in Slots : lDecided[l][s] \in submitted \cup {NoOp, None}

(* A value is chosen in a slot when a majority of acceptors accepted it in *)
(* one ballot (PMS 2.2); only one value is ever chosen per slot, whether   *)
(* or not a learner hears of it.                                           *)
Chosen(s) ==
    {v \in AnyValue :
        \E b \in Ballots, Q \in Quorums :
            \A a \in Q : [type |-> "accepted", src |-> a, bal |-> b, slot |-> s, val |-> v] \in msgs}
ChosenUnique == \A s \in Slots : Cardinality(Chosen(s)) <= 1

(* What the learner's per-ballot tally relies on: one ballot proposes at   *)
(* most one value per slot (PMS 2.2: "a proposer ... issues a proposal     *)
(* with number n": one proposal per number).                               *)
OneValuePerBallot ==
    LET accepts == {m \in msgs : m.type = "accept"}
    IN  \A m, n \in accepts : m.bal = n.bal /\ m.slot = n.slot => m.val = n.val

(* Acceptors' promises never go down, restarts included (PMS 2.5).         *)
PromisesMonotone == [][\A a \in Acceptors : LessEq(aPromised[a], aPromised'[a])]_vars

(* Symmetry: acceptors, learners and values are interchangeable.           *)
\* (One permutation of all three sets at once: TLC does not close a SYMMETRY
\* set under composition, so a union of the three would reduce less.)
Symmetry == {x @@ y @@ z : x \in Permutations(Acceptors),
                           y \in Permutations(Learners),
                           z \in Permutations(Values)}
=============================================================================
