----------------------------- MODULE MultiPaxos -----------------------------
(***************************************************************************)
(* The Multi-Paxos protocol of paxos_agents/core, as the core runs it.     *)
(*                                                                         *)
(* Not the textbook algorithm: each action names the core function it      *)
(* models. "PMS x.y" cites Lamport, "Paxos Made Simple" (2001), section    *)
(* x.y.                                                                    *)
(*                                                                         *)
(*  - Ballots are <<round, node>> compared lexicographically (ids.py).     *)
(*  - A proposer runs phase 1 ONCE for every slot >= a first slot          *)
(*    (Prepare.first_slot); on a majority of Promises it adopts, per slot, *)
(*    the value of the highest ballot reported, fills the holes below the  *)
(*    highest reported slot with the no-op, and then proposes new values   *)
(*    in the following slots (PMS 3).                                      *)
(*  - Acceptors promise only a STRICTLY higher ballot, accept at or above  *)
(*    the promise and raise it, and refuse anything else (PMS 2.2).        *)
(*  - Learners decide a slot once a majority of acceptors Accepted it in   *)
(*    ONE ballot (PMS 2.3).                                                *)
(*  - Crash-restart keeps exactly what the core persists (ready.Record,    *)
(*    PMS 2.5): the acceptor's promise, votes and compaction point, the    *)
(*    learner's decisions, the proposer's highest round.                   *)
(*  - Log compaction (acceptor.on_stored; Paxos Made Live 5.5): learners   *)
(*    report how far their decided log is durable (Stored), and an         *)
(*    acceptor deletes its votes below its compaction point, one above     *)
(*    the LOWEST prefix every learner has stored, and from then on refuses *)
(*    any Prepare or Accept below the point, whatever the ballot.          *)
(*  - Messages are a set that only grows: a message once sent may be       *)
(*    received any number of times, in any order, or never. That is loss,  *)
(*    duplication and reordering (PMS 2.1: messages "can take arbitrarily  *)
(*    long to be delivered, can be duplicated, and can be lost").          *)
(*                                                                         *)
(* Timers, heartbeats, forwarding, batching and the window decide only     *)
(* WHEN a proposer acts, never WHAT it may send, so they are replaced by   *)
(* nondeterminism: any proposer may start a new phase 1 at any time (the   *)
(* core's election timeout, a learner's Retry below the leader's first     *)
(* slot, and a Nack or heartbeat that deposes a leader all end in          *)
(* Proposer._start_election), and a leader may propose any submitted value *)
(* or the no-op in its next slot at any time. Every run of the core thus   *)
(* has a behaviour of this spec that sends the same messages and leaves    *)
(* the acceptors in the same states (the differences: Prepares nobody      *)
(* receives, see StartPhase1, and moves that only take choices away from   *)
(* a proposer, see Nacks below and RestartProposer), so what TLC proves    *)
(* here holds for the core within the model's bounds.                      *)
(*                                                                         *)
(* Two things are modelled by what they can lead to rather than by a       *)
(* variable, which keeps the state space small enough for CI:              *)
(*  - Nacks. Stepping down on a Nack (Proposer.on_nack) only takes moves   *)
(*    away from a proposer, so the correct spec leaves it out; a planted   *)
(*    bug that counts a Nack as a Promise asks Refused(a, b), which holds  *)
(*    exactly when acceptor a has sent, or may now send, a Nack of b       *)
(*    (promises only grow).                                                *)
(*  - Learners. A learner's decision is read off the Accepted messages and *)
(*    influences no other agent, and the set of Accepted messages only     *)
(*    grows, so any value some learner could decide at some point it can   *)
(*    still decide in every later state. Decidable(s) is the set of values *)
(*    a learner, whichever Accepted messages it got in whatever order, may *)
(*    decide in slot s; two learners can disagree iff it ever holds two    *)
(*    values. So Agreement below covers any number of learners, each one   *)
(*    restarting at any time (it keeps its decisions, loses its tallies).  *)
(*    What a learner tells others is only how far its log is durable       *)
(*    (Stored, for compaction): one variable, lStored, see Compaction.     *)
(*                                                                         *)
(* The constant Bug plants one of the core's known bugs (config.PLANTABLE) *)
(* so that the tests can show TLC catches each of them:                    *)
(*   "None"                  the core as it is;                            *)
(*   "ForgetOnRestart"       an acceptor restarts with an empty record     *)
(*                           (plant "forget-promise");                     *)
(*   "CrossBallotLearner"    a learner counts the votes of a slot across   *)
(*                           ballots (plant "cross-ballot-learner");       *)
(*   "ReuseBallot"           a proposer restarts without its round, and a  *)
(*                           Nack of its ballot counts as an empty Promise *)
(*                           (plant "reuse-ballot");                       *)
(*   "IgnorePromisedValues"  a new leader ignores the votes the Promises   *)
(*                           report (plant "ignore-promised-value");       *)
(*   "AcceptWithoutPromise"  an acceptor accepts any ballot and never      *)
(*                           raises its promise (plant                     *)
(*                           "accept-without-promise");                    *)
(*   "LoseRound"             a proposer restarts without its round and     *)
(*                           handles Nacks correctly: what the docstring   *)
(*                           of proposer.py says is still safe. It is not: *)
(*                           a delayed or duplicated Promise sent to the   *)
(*                           old incarnation completes the new one's phase *)
(*                           1 under the reused ballot (see README.md);    *)
(*   "TruncateEarly"         an acceptor compacts below the HIGHEST prefix *)
(*                           a learner stored, not the lowest (plant       *)
(*                           "truncate-early"): votes go that a learner    *)
(*                           still needs (Learnable, not Agreement);       *)
(*   "PromiseBelowPoint"     an acceptor answers a Prepare from below its  *)
(*                           compaction point with a Promise, reporting    *)
(*                           "no vote" where it deleted its votes: why     *)
(*                           on_prepare refuses it (no plant in the core). *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets, TLC

CONSTANTS
    Proposers,  \* proposer node ids: positive naturals, ordered as the core orders its strings
    Acceptors,  \* acceptor ids (model values)
    Learners,   \* learner ids (model values): every configured learner
    Values,     \* the commands clients may submit (model values)
    NoOp,       \* the hole-filling no-op (commands.NOOP, the empty batch)
    None,       \* "nothing": the vote of an acceptor that accepted nothing in a slot
    NumSlots,   \* the slots are 0 .. NumSlots-1
    NumBallots, \* the ballots are the NumBallots lowest <<round, node>> pairs
    ProposerRestarts, \* whether proposers crash and restart (see RestartProposer)
    MaxCompacted, \* the highest compaction point explored (0: none; see Compact)
    Bug         \* the planted bug, "None" for the core as it is

Bugs == {"None", "ForgetOnRestart", "CrossBallotLearner", "ReuseBallot",
         "IgnorePromisedValues", "AcceptWithoutPromise", "LoseRound",
         "TruncateEarly", "PromiseBelowPoint"}

ASSUME /\ Proposers \subseteq Nat \ {0}
       /\ Acceptors # {} /\ Learners # {}
       /\ NoOp \notin Values /\ None \notin Values \cup {NoOp}
       /\ NumSlots \in Nat \ {0} /\ NumBallots \in Nat \ {0}
       /\ ProposerRestarts \in BOOLEAN
       /\ MaxCompacted \in 0 .. NumSlots
       /\ Bug \in Bugs

-----------------------------------------------------------------------------
(* Ballots: ids.Ballot, a (round, node_id) pair compared as a tuple, so    *)
(* different proposers use disjoint sets of ballots (PMS 2.5).             *)

Zero == <<0, 0>>                   \* ids.ZERO_BALLOT: below every real ballot

Less(b, c) == \/ b[1] < c[1]
              \/ b[1] = c[1] /\ b[2] < c[2]
LessEq(b, c) == b = c \/ Less(b, c)

\* The model's bound: the NumBallots lowest ballots. With 2 proposers, 2 is
\* one round each, 3 gives the lower proposer a second round, 4 two rounds each.
MaxRound == (NumBallots - 1) \div Cardinality(Proposers) + 1
Rank(b) == (b[1] - 1) * Cardinality(Proposers) + Cardinality({q \in Proposers : q <= b[2]})
Ballots == {b \in (1 .. MaxRound) \X Proposers : Rank(b) <= NumBallots}

Slots == 0 .. NumSlots - 1
AnyValue == Values \cup {NoOp}     \* what a slot can decide
Max(S) == CHOOSE x \in S : \A y \in S : y <= x
Min(S) == CHOOSE x \in S : \A y \in S : x <= y

\* Membership.majority. The core acts the moment a count REACHES it, so
\* the quorums are the sets of acceptors of exactly that size.
Majority == Cardinality(Acceptors) \div 2 + 1
Quorums == {Q \in SUBSET Acceptors : Cardinality(Q) = Majority}

\* messages.Vote without its slot: what an acceptor accepted in one slot.
NoVote == [bal |-> Zero, val |-> None]
Votes == {NoVote} \cup [bal : Ballots, val : AnyValue]

-----------------------------------------------------------------------------
(* Messages (messages.py), one set per kind, with the fields the protocol  *)
(* reads. A Promise goes to the owner of its ballot, so it needs no dst; a *)
(* Prepare and an Accept go to every acceptor, an Accepted to the proposer *)
(* and to every learner, so one message stands for all its copies.         *)

Prepares  == [bal : Ballots, first : Slots]                       \* phase 1a
Promises  == [src : Acceptors, bal : Ballots, first : Slots,
              votes : [Slots -> Votes]]                           \* phase 1b
Accepts   == [bal : Ballots, slot : Slots, val : AnyValue]        \* phase 2a
Accepteds == [src : Acceptors, bal : Ballots, slot : Slots, val : AnyValue] \* 2b

VARIABLES
    \* the network: every message ever sent, by kind
    prepareMsgs, promiseMsgs, acceptMsgs, acceptedMsgs,
    \* acceptor.Acceptor, all of it persisted (Record.promised, votes, compacted):
    aPromised,  \* acceptor -> the highest ballot it promised or accepted
    aVotes,     \* acceptor -> slot -> its vote there (the last, so the highest)
    aCompacted, \* acceptor -> its compaction point: no votes below it, and
                \* every Prepare and Accept below it is refused
    \* learner.Learner, persisted (Record.applied):
    lStored,    \* learner -> the slots below this are decided and durable
                \* there (next_apply); its Stored messages report lStored - 1
    \* proposer.Proposer:
    pRound,     \* proposer -> the highest round it used; persisted (Record.round)
    pBallot,    \* proposer -> its current ballot
    pPhase,     \* proposer -> "follower" | "candidate" | "leader"
    pFirst,     \* proposer -> the first slot of its phase 1 (while a candidate)
    pNext,      \* proposer -> a leader's next fresh slot (next_slot)
    \* history, for Validity:
    submitted   \* the values clients have submitted so far

msgVars == <<prepareMsgs, promiseMsgs, acceptMsgs, acceptedMsgs>>
acceptorVars == <<aPromised, aVotes, aCompacted>>
proposerVars == <<pRound, pBallot, pPhase, pFirst, pNext>>
vars == <<msgVars, acceptorVars, proposerVars, lStored, submitted>>

TypeOK ==
    /\ prepareMsgs \subseteq Prepares
    /\ promiseMsgs \subseteq Promises
    /\ acceptMsgs \subseteq Accepts
    /\ acceptedMsgs \subseteq Accepteds
    /\ aPromised \in [Acceptors -> Ballots \cup {Zero}]
    /\ aVotes \in [Acceptors -> [Slots -> Votes]]
    /\ aCompacted \in [Acceptors -> 0 .. NumSlots]
    /\ lStored \in [Learners -> 0 .. NumSlots]
    /\ pRound \in [Proposers -> 0 .. MaxRound]
    /\ pBallot \in [Proposers -> Ballots \cup {Zero}]
    /\ pPhase \in [Proposers -> {"follower", "candidate", "leader"}]
    /\ pFirst \in [Proposers -> Slots]
    /\ pNext \in [Proposers -> 0 .. NumSlots]
    /\ submitted \subseteq Values

Init ==
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
    /\ submitted = {}

-----------------------------------------------------------------------------
(* What the Accepted messages say (PMS 2.2, 2.3).                          *)

\* A value is chosen in a slot once a majority of acceptors accepted it in
\* one ballot (PMS 2.2).
Chosen(s) ==
    {v \in AnyValue :
        \E b \in Ballots :
            Cardinality({m.src : m \in {m \in acceptedMsgs :
                            m.slot = s /\ m.bal = b /\ m.val = v}}) >= Majority}

\* The values a learner may decide in slot s (Learner.on_accepted). The core
\* keeps a tally of voters per (slot, ballot) and, when one reaches a
\* majority, decides the value of the Accepted that did it, without looking
\* at the others' values (sound because a ballot proposes one value per
\* slot: OneValuePerBallot). Any Accepted of a tally that reaches a majority
\* can be the one that does it, received last. Planted
\* "CrossBallotLearner": one tally for all the ballots of a slot.
\* A Decide (a proposer's answer to a learner's Retry) carries what that
\* proposer counted from the same Accepted messages: no other decision.
Decidable(s) ==
    LET Tally(bals) == {m \in acceptedMsgs : m.slot = s /\ m.bal \in bals}
        Decides(T) == IF Cardinality({m.src : m \in T}) >= Majority
                         THEN {m.val : m \in T} ELSE {}
    IN  IF Bug = "CrossBallotLearner" THEN Decides(Tally(Ballots))
        ELSE UNION {Decides(Tally({b})) : b \in Ballots}

-----------------------------------------------------------------------------
(* A client submits a value (Node.propose); a leader may then propose it.  *)

Submit(v) ==
    /\ v \notin submitted
    /\ submitted' = submitted \cup {v}
    /\ UNCHANGED <<msgVars, acceptorVars, proposerVars, lStored>>

-----------------------------------------------------------------------------
(* Phase 1a (PMS 2.2; PMS 3 for "every slot from first on").               *)
(* Proposer._start_election: take a round above every round used, persist  *)
(* it (the Prepare leaves after the persist), Prepare all slots >= first.  *)
(* The core takes max(round, the highest round seen) + 1; here round + 1,  *)
(* which loses nothing: a core proposer that jumps rounds is one that ran  *)
(* the skipped rounds' phase 1 here with every Prepare lost. The core's    *)
(* first slot is its first undecided one (as far as it knows: a majority   *)
(* accepted a value in one ballot, by its own count or another leader's    *)
(* heartbeat) or a lower one a learner's Retry asks for: so any slot that  *)
(* has every slot below it chosen.                                         *)

StartPhase1(p) ==
    LET r == pRound[p] + 1 IN
    /\ <<r, p>> \in Ballots
    /\ \E f \in {f \in Slots : \A t \in 0 .. f - 1 : Chosen(t) # {}} :
        /\ pRound' = [pRound EXCEPT ![p] = r]
        /\ pBallot' = [pBallot EXCEPT ![p] = <<r, p>>]
        /\ pPhase' = [pPhase EXCEPT ![p] = "candidate"]
        /\ pFirst' = [pFirst EXCEPT ![p] = f]
        /\ pNext' = [pNext EXCEPT ![p] = 0]   \* unused until it leads
        /\ prepareMsgs' = prepareMsgs \cup {[bal |-> <<r, p>>, first |-> f]}
    /\ UNCHANGED <<promiseMsgs, acceptMsgs, acceptedMsgs, acceptorVars, lStored, submitted>>

(* Phase 1b (PMS 2.2): Acceptor.on_prepare. Promise a STRICTLY higher      *)
(* ballot and report the votes in slots >= first (PMS 3); the promise is   *)
(* persisted before the Promise leaves (PMS 2.5). A Prepare whose first    *)
(* slot is below the compaction point is refused whatever its ballot: the  *)
(* votes it asks for may be gone. (The core's Promise also carries the     *)
(* point; no proposer action here reads it, see "Compaction" below.)       *)

Promise(a) ==
    \E m \in prepareMsgs :
        /\ m.first >= aCompacted[a] \/ Bug = "PromiseBelowPoint"
        /\ Less(aPromised[a], m.bal)
        /\ aPromised' = [aPromised EXCEPT ![a] = m.bal]
        /\ promiseMsgs' = promiseMsgs \cup
              {[src |-> a, bal |-> m.bal, first |-> m.first,
                votes |-> [s \in Slots |-> IF s >= m.first THEN aVotes[a][s] ELSE NoVote]]}
    /\ UNCHANGED <<prepareMsgs, acceptMsgs, acceptedMsgs, aVotes, aCompacted, proposerVars,
                   lStored, submitted>>

(* Phase 2b (PMS 2.2): Acceptor.on_accept. Accept at or above the promise, *)
(* raise the promise to it, persist, then tell the proposer and every      *)
(* learner. Planted "AcceptWithoutPromise": no check and no raise. An      *)
(* Accept below the compaction point is refused whatever its ballot.       *)

Accept(a) ==
    \E m \in acceptMsgs :
        /\ m.slot >= aCompacted[a]
        /\ IF Bug = "AcceptWithoutPromise"
              THEN UNCHANGED aPromised
              ELSE /\ LessEq(aPromised[a], m.bal)
                   /\ aPromised' = [aPromised EXCEPT ![a] = m.bal]
        /\ aVotes' = [aVotes EXCEPT ![a][m.slot] = [bal |-> m.bal, val |-> m.val]]
        /\ acceptedMsgs' = acceptedMsgs \cup
              {[src |-> a, bal |-> m.bal, slot |-> m.slot, val |-> m.val]}
    /\ UNCHANGED <<prepareMsgs, promiseMsgs, acceptMsgs, aCompacted, proposerVars,
                   lStored, submitted>>

(* The refusals of Acceptor.on_prepare and on_accept: a Prepare not        *)
(* strictly above the promise, an Accept below it, and either below the    *)
(* compaction point, answered with a Nack of the refused ballot (the       *)
(* "inform the proposer" of PMS 2.3). Nacks are not kept as messages:      *)
(* on_nack makes a candidate or a leader step down, or (a refusal for      *)
(* compaction only) start phase 1 again above the point or skip slots,     *)
(* which only takes moves away from it, so the correct spec can leave it   *)
(* out. Promises and points only grow, so once a has sent a Nack of b,     *)
(* Refused(a, b) stays true: "a Nack of b from a may be in the network".   *)

Refused(a, b) ==
    \/ \E m \in prepareMsgs : /\ m.bal = b
                              /\ \/ LessEq(b, aPromised[a])
                                 \/ m.first < aCompacted[a] /\ Bug # "PromiseBelowPoint"
    \/ \E m \in acceptMsgs : /\ m.bal = b
                             /\ \/ Less(b, aPromised[a]) /\ Bug # "AcceptWithoutPromise"
                                \/ m.slot < aCompacted[a]

-----------------------------------------------------------------------------
(* Phase 2a, on becoming leader (PMS 2.2 P2c, PMS 3): Proposer.on_promise  *)
(* and _become_leader. A candidate counts the Promises whose ballot is its *)
(* own (first_slot is not compared) and, with a majority, leads: in every  *)
(* slot from its first slot up to the highest slot any Promise reported, it *)
(* proposes the value of the highest ballot reported there, or the no-op   *)
(* where nobody reported a vote. (The core skips slots it already knows    *)
(* decided: here, Accepts that are lost.)                                  *)

\* The Promises candidate p counts. Planted "ReuseBallot": a Nack of its
\* ballot counts as a Promise with no votes (on_nack calls on_promise with
\* Promise(votes=())), and no Nack makes it step down.
PromisesFor(p) ==
    {m \in promiseMsgs : m.bal = pBallot[p]}
    \cup (IF Bug = "ReuseBallot"
            THEN {[src |-> a, bal |-> pBallot[p], first |-> pFirst[p],
                   votes |-> [s \in Slots |-> NoVote]] :
                  a \in {a \in Acceptors : Refused(a, pBallot[p])}}
            ELSE {})

\* The votes the Promises P (one from each acceptor in Q) report in slot s.
\* Planted "IgnorePromisedValues": none.
Reported(P, Q, s) ==
    IF Bug = "IgnorePromisedValues" THEN {}
    ELSE {P[a].votes[s] : a \in Q} \ {NoVote}

\* What the leader proposes in slot s: the value of the highest ballot
\* reported, else the no-op. (Two values share the highest ballot only if a
\* ballot was reused; the core then takes the one it counted first.)
Adoptable(P, Q, s) ==
    LET R == Reported(P, Q, s)
    IN  IF R = {} THEN {NoOp}
        ELSE {w.val : w \in {w \in R : \A u \in R : LessEq(u.bal, w.bal)}}

\* Every function on D that picks, at each d, an element of the set C[d]:
\* the leader's possible proposals (one unless a ballot was reused).
RECURSIVE Choices(_, _)
Choices(D, C) ==
    IF D = {} THEN {[d \in {} |-> NoOp]}
    ELSE LET d == CHOOSE x \in D : TRUE
         IN  {[x \in DOMAIN f \cup {d} |-> IF x = d THEN v ELSE f[x]] :
                 f \in Choices(D \ {d}, C), v \in C[d]}

BecomeLeader(p) ==
    /\ pPhase[p] = "candidate"
    /\ \E Q \in Quorums :
       \E P \in [Q -> PromisesFor(p)] :
        /\ \A a \in Q : P[a].src = a
        /\ LET first == pFirst[p]
               \* next_slot = max(first, the highest reported slot + 1)
               next == Max({first} \cup {s + 1 : s \in {s \in Slots : Reported(P, Q, s) # {}}})
               range == first .. (next - 1)
           IN  \E adopt \in Choices(range, [s \in range |-> Adoptable(P, Q, s)]) :
                /\ pPhase' = [pPhase EXCEPT ![p] = "leader"]
                /\ pNext' = [pNext EXCEPT ![p] = next]
                /\ acceptMsgs' = acceptMsgs \cup
                      {[bal |-> pBallot[p], slot |-> s, val |-> adopt[s]] : s \in range}
    /\ pFirst' = [pFirst EXCEPT ![p] = 0]   \* no longer read
    /\ UNCHANGED <<prepareMsgs, promiseMsgs, acceptedMsgs, acceptorVars,
                   pRound, pBallot, lStored, submitted>>

(* Phase 2a, from then on (PMS 3): Proposer._propose_pending and on_retry. *)
(* The leader proposes in its next fresh slot a submitted value, or the    *)
(* no-op (on_retry fills the slots up to a missing one with no-ops). It    *)
(* proposes once per slot and ballot: next_slot only grows while it leads. *)
(* (A re-sent Accept is the same message.)                                 *)

Propose(p) ==
    /\ pPhase[p] = "leader"
    /\ pNext[p] < NumSlots
    /\ \E v \in submitted \cup {NoOp} :
          acceptMsgs' = acceptMsgs \cup {[bal |-> pBallot[p], slot |-> pNext[p], val |-> v]}
    /\ pNext' = [pNext EXCEPT ![p] = pNext[p] + 1]
    /\ UNCHANGED <<prepareMsgs, promiseMsgs, acceptedMsgs, acceptorVars,
                   pRound, pBallot, pPhase, pFirst, lStored, submitted>>

-----------------------------------------------------------------------------
(* Compaction (peers.Peers.report, acceptor.Acceptor.on_stored; Paxos Made *)
(* Live 5.5).                                                              *)
(*                                                                         *)
(* A learner applies its decided slots in order and persists its applied   *)
(* prefix; then it sends Stored(upto) to the acceptors and the other       *)
(* learners. Store(l) is that persist: lStored[l] grows to any u such      *)
(* that every slot below u is decidable (Decidable covers Accepted, Decide *)
(* and a peer's Chunk alike: they all carry a value counted from the same  *)
(* Accepted messages). Stored messages are modelled by what they can lead  *)
(* to, as Nacks are: a Stored(upto) from l exists only once upto <         *)
(* lStored[l], and it may be delivered at once, so what an acceptor may    *)
(* have heard from l is anything below lStored[l].                         *)
(*                                                                         *)
(* Compact(a): the acceptor raises its point to one above the lowest       *)
(* prefix that EVERY configured learner reported (acceptor._point), and    *)
(* persists it in the transaction that deletes its votes below it. It may  *)
(* compact less, or later (reports are late or lost), so any point up to   *)
(* that bound. Planted "TruncateEarly" (plants.TruncateEarlyAcceptor): the *)
(* bound is one above the HIGHEST prefix some learner reported.            *)
(*                                                                         *)
(* The proposer side of the core (a Promise or Nack carrying the point     *)
(* raises the proposer's phase-1 first slot and a leader's next slot above *)
(* it; a learner's Retry below it is not answered with a new ballot) only  *)
(* takes moves away from a proposer, like stepping down on a Nack, so it   *)
(* is left out: proposers here may still run phase 1 from, and propose in, *)
(* slots below any acceptor's point, and only the acceptors' refusal keeps *)
(* them out. What TLC checks is thus that safety rests on the acceptors'   *)
(* rule alone, whatever the proposers know of the point.                   *)
(*                                                                         *)
(* MaxCompacted bounds the model: learners store, and acceptors compact,   *)
(* only below it. With MaxCompacted = 0 there is no compaction at all and  *)
(* the spec is the one from before compaction (MultiPaxos.cfg). The cost:  *)
(* a Store or Compact step can be moved past every step that follows it    *)
(* (a compacted acceptor only refuses more, and the votes it deleted are   *)
(* never reported, as it promises no Prepare from below its point), so the *)
(* states reachable with compaction are those reachable without it, each   *)
(* followed by Store and Compact steps: every combination of learners'     *)
(* prefixes and acceptors' points on top of every state. With two slots    *)
(* that is 22 times the states of MultiPaxos.cfg, so CI checks compaction  *)
(* on one slot (MultiPaxos_compaction.cfg), and                            *)
(* MultiPaxos_compaction_large.cfg on two.                                 *)

\* The highest compaction point the rule allows an acceptor now.
CompactionBound ==
    IF Bug = "TruncateEarly"
        THEN Max({lStored[l] : l \in Learners})
        ELSE Min({lStored[l] : l \in Learners})

Store(l) ==
    /\ lStored[l] < MaxCompacted
    /\ \E u \in lStored[l] + 1 .. MaxCompacted :
          /\ \A s \in lStored[l] .. u - 1 : Decidable(s) # {}
          /\ lStored' = [lStored EXCEPT ![l] = u]
    /\ UNCHANGED <<msgVars, acceptorVars, proposerVars, submitted>>

Compact(a) ==
    /\ aCompacted[a] < MaxCompacted
    /\ \E c \in aCompacted[a] + 1 .. Min({CompactionBound, MaxCompacted}) :
          /\ aCompacted' = [aCompacted EXCEPT ![a] = c]
          /\ aVotes' = [aVotes EXCEPT ![a] = [s \in Slots |-> IF s < c THEN NoVote ELSE @[s]]]
    /\ UNCHANGED <<msgVars, aPromised, proposerVars, lStored, submitted>>

-----------------------------------------------------------------------------
(* Crash and restart (PMS 2.5; ready.Record; sim.SimCluster._boot). A      *)
(* crash may strike anywhere; what was not persisted is lost together with *)
(* the messages not yet sent (they leave only after the persist), which    *)
(* here is a step not taken or a message never received. So a restart is   *)
(* one step that keeps the persisted state. Crashes are not bounded: every *)
(* restart lands in the same finite set of states.                         *)

(* An acceptor persists all it holds, so its restart changes nothing and   *)
(* is no action. Planted "ForgetOnRestart": it comes back empty.           *)
RestartAcceptor(a) ==
    /\ Bug = "ForgetOnRestart"
    /\ aPromised' = [aPromised EXCEPT ![a] = Zero]
    /\ aVotes' = [aVotes EXCEPT ![a] = [s \in Slots |-> NoVote]]
    /\ aCompacted' = [aCompacted EXCEPT ![a] = 0]
    /\ UNCHANGED <<msgVars, proposerVars, lStored, submitted>>

(* A proposer keeps only its round: it comes back a follower with no       *)
(* ballot. Planted "ReuseBallot" and "LoseRound": it loses the round too.  *)
(* With its round kept, a restarted proposer can do nothing but start a    *)
(* new phase 1 with round + 1, which it could do just the same had it not  *)
(* restarted: the restart reaches no new messages or acceptor states, only *)
(* about four times as many states. So ProposerRestarts = FALSE, in the    *)
(* model CI checks, leaves them out where they keep the round, and the     *)
(* long model (MultiPaxos_large.cfg) checks them. The planted bugs that    *)
(* lose the round always restart.                                          *)
RestartProposer(p) ==
    /\ ProposerRestarts \/ Bug \in {"ReuseBallot", "LoseRound"}
    /\ pRound' = IF Bug \in {"ReuseBallot", "LoseRound"}
                    THEN [pRound EXCEPT ![p] = 0] ELSE pRound
    /\ pBallot' = [pBallot EXCEPT ![p] = Zero]
    /\ pPhase' = [pPhase EXCEPT ![p] = "follower"]
    /\ pFirst' = [pFirst EXCEPT ![p] = 0]
    /\ pNext' = [pNext EXCEPT ![p] = 0]
    /\ UNCHANGED <<msgVars, acceptorVars, lStored, submitted>>

(* A learner persists its decisions and applied prefix (lStored) and       *)
(* loses its tallies, which Decidable recomputes from the Accepted         *)
(* messages: no action either. (Learners that lose their disk, which the   *)
(* simulator allows once per run, are not modelled.)                       *)

-----------------------------------------------------------------------------
Next ==
    \/ \E v \in Values : Submit(v)
    \/ \E p \in Proposers : StartPhase1(p) \/ BecomeLeader(p) \/ Propose(p)
                            \/ RestartProposer(p)
    \/ \E a \in Acceptors : Promise(a) \/ Accept(a) \/ Compact(a) \/ RestartAcceptor(a)
    \/ \E l \in Learners : Store(l)

Spec == Init /\ [][Next]_vars

-----------------------------------------------------------------------------
(* Safety.                                                                 *)

(* Agreement: no two learners decide different values in one slot (nor     *)
(* does one learner across restarts): whichever Accepted messages each     *)
(* learner counts, in whatever order, at most one value can be decided.    *)
Agreement == \A s \in Slots : Cardinality(Decidable(s)) <= 1

(* Validity (PMS 2.1): only a value a client submitted, or the no-op, can  *)
(* be decided.                                                             *)
Validity == \A s \in Slots : Decidable(s) \subseteq submitted \cup {NoOp}

(* PMS 2.1, the rest of safety: only a single value is chosen, and a       *)
(* learner learns only a value that has been chosen.                       *)
ChosenUnique == \A s \in Slots : Cardinality(Chosen(s)) <= 1
LearnedIsChosen == \A s \in Slots : Decidable(s) \subseteq Chosen(s)

(* What the learners' per-ballot tally relies on: a ballot proposes at     *)
(* most one value per slot (PMS 2.2: one proposal per proposal number).    *)
OneValuePerBallot ==
    \A m, n \in acceptMsgs : m.bal = n.bal /\ m.slot = n.slot => m.val = n.val

(* Why the compaction rule matters. A decision must never depend on        *)
(* votes that are gone: every chosen value is either stored by EVERY       *)
(* learner (so any learner that misses it can copy it from a peer, and it  *)
(* survives the loss of any one learner's disk) or still the vote of a     *)
(* quorum of acceptors (so the phase 1 that a learner's Retry starts       *)
(* adopts it again, PMS 2.2 P2c). With "TruncateEarly", an acceptor drops  *)
(* its vote for a value only one learner stored, and with a quorum's vote  *)
(* gone the others cannot learn it from the acceptors any more.            *)
Learnable ==
    \A s \in Slots : \A v \in Chosen(s) :
        \/ \A l \in Learners : lStored[l] > s
        \/ \E Q \in Quorums : \A a \in Q : aVotes[a][s].val = v

(* The rule itself, as the simulator's checker states it                   *)
(* (sim.checks.Checker.compacted): no acceptor's point passes a slot that  *)
(* some learner has not stored.                                            *)
CompactedIsStored ==
    \A a \in Acceptors, l \in Learners : aCompacted[a] <= lStored[l]

(* Acceptors' promises never go down, restarts included (PMS 2.5).         *)
PromisesMonotone == [][\A a \in Acceptors : LessEq(aPromised[a], aPromised'[a])]_vars

(* Acceptors and values are interchangeable (TLC's SYMMETRY), and so are   *)
(* learners (SymmetryLearners, for the models with compaction: without it  *)
(* the learners never differ, and each permutation costs TLC time in every *)
(* state).                                                                 *)
Symmetry == {x @@ y : x \in Permutations(Acceptors), y \in Permutations(Values)}
SymmetryLearners ==
    {x @@ y @@ z : x \in Permutations(Acceptors), y \in Permutations(Values),
                   z \in Permutations(Learners)}
=============================================================================
