------------------------- MODULE MultiPaxosReconfig -------------------------
(***************************************************************************)
(* Multi-Paxos with alpha-window reconfiguration (issue #14), after        *)
(* Lamport, Malkhi, Zhou, "Reconfiguring a state machine" (2010), section  *)
(* 4 ("the alpha approach"), and the end of section 3 of "Paxos Made       *)
(* Simple" (PMS).                                                          *)
(*                                                                         *)
(*  - A configuration is <<epoch, acceptors>>. Epoch 0, InitialMembers,    *)
(*    governs from slot 0.                                                 *)
(*  - A reconfiguration is an ordinary command decided in a slot: "epoch E *)
(*    has acceptors M". Decided in slot i, and the first command in slot   *)
(*    order naming the latest epoch + 1, it governs every slot >= i +      *)
(*    Alpha; any other (stale epoch, second one for an epoch) is skipped   *)
(*    by everyone alike.                                                   *)
(*  - config(s) is thus a function of the decided log of slots <= s -      *)
(*    Alpha. An agent acts on or judges slot s only once it knows every    *)
(*    decision below s - Alpha + 1 (a proposer's window is Alpha).         *)
(*  - Phase 2: s is chosen when a majority OF config(s) accepted one value *)
(*    in one ballot; votes of non-members are never counted.               *)
(*  - Phase 1: a Prepare covers every slot >= its first slot; a proposer   *)
(*    proposes in slot s only with the Promises of a majority of config(s) *)
(*    for its ballot, and adopts the highest-ballot vote those members     *)
(*    report in s.                                                         *)
(*  - Acceptors know nothing of configurations.                            *)
(*                                                                         *)
(* The Paxos part is that of MultiPaxos.tla (same ballots, Promise and     *)
(* Accept rules, messages kept in sets that only grow: loss, duplication,  *)
(* reordering), without what that model already checks and what is        *)
(* independent of membership: compaction, crash-restarts (an acceptor and *)
(* a learner persist all they hold; a proposer that keeps its round can    *)
(* only start a new phase 1, which it may anyway), Nacks (they only take   *)
(* moves away from a proposer).                                            *)
(*                                                                         *)
(* What is modelled more loosely than the protocol, each a superset of its *)
(* behaviours, so that what TLC proves holds for the protocol too:         *)
(*  - A Prepare reaches every acceptor, member or not: a new acceptor,   *)
(*    empty, may promise any ballot before it joins. An Accept for s goes  *)
(*    to the members of config(s) as its proposer sees it (field to);     *)
(*    with StrayVotes any acceptor may accept it all the same (a removed   *)
(*    acceptor not stopped yet, a misdelivered or replayed Accept): such   *)
(*    votes exist and must be ignored. The CI model leaves them out (they  *)
(*    multiply its states by 5); the mutation check NonMemberVotes and     *)
(*    WindowPastAlpha turn them on.                                        *)
(*  - Phase 1 is checked per slot, when the leader proposes there: it      *)
(*    needs a majority of config(s) that promised its ballot, whatever     *)
(*    else it has. The design's leader counts, before it leads, a          *)
(*    majority of each configuration it knows, and when it learns a new    *)
(*    one it sends its ballot's Prepare (first slot i + Alpha) to the new  *)
(*    members and proposes nothing from i + Alpha on until a majority of   *)
(*    them promised: every slot s it proposes in thus has a majority of    *)
(*    config(s) behind it, the one condition kept here. That second        *)
(*    Prepare is the first one received late: a Prepare reaches every      *)
(*    acceptor, and the votes it reports below i + Alpha are from          *)
(*    non-members there, never adopted.                                    *)
(*  - The leader adopts, in slot s, the highest vote reported by any       *)
(*    majority Q of config(s) that promised (the design's leader takes the *)
(*    highest over all members that promised: that is Q = the member that  *)
(*    reported it plus any others), else proposes any submitted command or *)
(*    the no-op (the core fills holes with the no-op and proposes new      *)
(*    commands after the highest reported slot: a subset).                 *)
(*  - What an agent knows of the decided log is any prefix that is         *)
(*    decidable (the Accepted messages, a Decide, a heartbeat: all counted *)
(*    from the same votes), as long as it reaches s - Alpha + 1.           *)
(*                                                                         *)
(* Learners are modelled by what they can decide, as in MultiPaxos.tla:    *)
(* Decided[s + 1] is every value a learner may decide in slot s, judging s *)
(* by the configuration that some decided log it may hold gives; two       *)
(* learners can disagree iff it ever holds two values.                     *)
(*                                                                         *)
(* The constant Bug plants a mistake, so that the tests show TLC sees it:  *)
(*   "None"             the protocol;                                      *)
(*   "NaiveSwap"        a configuration decided in slot i governs slot     *)
(*                      i + 1 on, while proposers still keep Alpha slots   *)
(*                      in flight and learners judge a slot knowing the    *)
(*                      log below s - Alpha + 1 only (the new acceptor set *)
(*                      "takes effect at once", for the agents that know   *)
(*                      it): majorities of the old and of the new set that *)
(*                      do not meet choose two values in one slot;         *)
(*   "OldQuorumPhase1"  phase 1 counts, and adopts from, a majority of the *)
(*                      initial configuration in every slot;               *)
(*   "NonMemberVotes"   learners count a vote in s from any acceptor       *)
(*                      towards config(s)'s majority;                      *)
(*   "WindowPastAlpha"  a proposer keeps Alpha + 1 slots in flight (the    *)
(*                      design requires Alpha >= window): it proposes in s *)
(*                      knowing the log below s - Alpha only.              *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets, Sequences, TLC

CONSTANTS
    Proposers,      \* proposer node ids: positive naturals
    Acceptors,      \* every acceptor id there may ever be (model values)
    InitialMembers, \* the acceptors of configuration 0 (the manifest's)
    NewConfigs,     \* the acceptor sets a reconfiguration command may name
    MaxEpoch,       \* reconfiguration commands name epochs 1 .. MaxEpoch
    Values,         \* the ordinary commands clients may submit (model values)
    NoOp,           \* the hole-filling no-op
    None,           \* "nothing": the vote of an acceptor that accepted nothing
    NumSlots,       \* the slots are 0 .. NumSlots-1
    NumBallots,     \* the ballots are the NumBallots lowest <<round, node>> pairs
    Alpha,          \* a configuration decided in slot i governs slots >= i + Alpha
    StrayVotes,     \* whether any acceptor may accept any Accept (see the header)
    Bug             \* the planted bug, "None" for the protocol

Bugs == {"None", "NaiveSwap", "OldQuorumPhase1", "NonMemberVotes", "WindowPastAlpha"}

ASSUME /\ Proposers \subseteq Nat \ {0}
       /\ InitialMembers \subseteq Acceptors /\ InitialMembers # {}
       /\ \A M \in NewConfigs : M \subseteq Acceptors /\ M # {}
       /\ MaxEpoch \in Nat
       /\ NoOp \notin Values /\ None \notin Values \cup {NoOp}
       /\ NumSlots \in Nat \ {0} /\ NumBallots \in Nat \ {0}
       /\ Alpha \in Nat \ {0}
       /\ StrayVotes \in BOOLEAN
       /\ Bug \in Bugs

-----------------------------------------------------------------------------
(* Ballots, as in MultiPaxos.tla: <<round, node>>, lexicographic.          *)

Zero == <<0, 0>>
Less(b, c) == \/ b[1] < c[1]
              \/ b[1] = c[1] /\ b[2] < c[2]
LessEq(b, c) == b = c \/ Less(b, c)
MaxRound == (NumBallots - 1) \div Cardinality(Proposers) + 1
Rank(b) == (b[1] - 1) * Cardinality(Proposers) + Cardinality({q \in Proposers : q <= b[2]})
Ballots == {b \in (1 .. MaxRound) \X Proposers : Rank(b) <= NumBallots}

Slots == 0 .. NumSlots - 1

-----------------------------------------------------------------------------
(* Commands and configurations.                                            *)

\* A reconfiguration command: "epoch e has acceptors members".
ConfigCmds == [epoch : 1 .. MaxEpoch, members : NewConfigs]
Commands == Values \cup ConfigCmds       \* what clients submit
AnyValue == Commands \cup {NoOp}         \* what a slot can decide

Initial == [epoch |-> 0, members |-> InitialMembers]

\* A majority of the acceptors M. The core acts the moment a count reaches
\* it, so the quorums are the sets of members of exactly that size.
Majority(M) == Cardinality(M) \div 2 + 1
Quorums(M) == {Q \in SUBSET M : Cardinality(Q) = Majority(M)}

\* How far after its slot a configuration takes effect. Planted "NaiveSwap":
\* in the very next slot, while agents still act knowing the log below
\* s - Alpha + 1 only (Known(s)).
Effect == IF Bug = "NaiveSwap" THEN 1 ELSE Alpha

\* The configuration after the decided command v, from configuration c: a
\* command counts only if it names the epoch after c's, so a stale one or a
\* second one for an epoch is skipped, by every agent alike.
Apply(c, v) == IF v \in ConfigCmds /\ v.epoch = c.epoch + 1 THEN v ELSE c

\* How many slots' decisions config(s) depends on: those of slots <= s - Effect.
Governing(s) == IF s + 1 >= Effect THEN s + 1 - Effect ELSE 0

\* How much of the decided log an agent must know to act on slot s: every
\* slot below Known(s), i.e. every slot <= s - Alpha (the proposer's window).
Known(s) == IF s + 1 >= Alpha THEN s + 1 - Alpha ELSE 0

-----------------------------------------------------------------------------
(* Messages and variables.                                                 *)

NoVote == [bal |-> Zero, val |-> None]
Votes == {NoVote} \cup [bal : Ballots, val : AnyValue]

Prepares  == [bal : Ballots, first : Slots]
Promises  == [src : Acceptors, bal : Ballots, first : Slots, votes : [Slots -> Votes]]
Accepts   == [bal : Ballots, slot : Slots, val : AnyValue, to : SUBSET Acceptors]
Accepteds == [src : Acceptors, bal : Ballots, slot : Slots, val : AnyValue]

VARIABLES
    prepareMsgs, promiseMsgs, acceptMsgs, acceptedMsgs,
    aPromised,  \* acceptor -> the highest ballot it promised or accepted
    pBallot,    \* proposer -> its current ballot (Zero before its first phase 1)
    pNext,      \* proposer -> the next slot it proposes in under pBallot
    submitted   \* the commands clients have submitted so far

msgVars == <<prepareMsgs, promiseMsgs, acceptMsgs, acceptedMsgs>>
vars == <<msgVars, aPromised, pBallot, pNext, submitted>>

\* An acceptor's vote in slot s: its Accepted there of the highest ballot (it
\* accepts only at or above its promise, which it raises: so its last one).
VoteOf(a, s) ==
    LET A == {m \in acceptedMsgs : m.src = a /\ m.slot = s}
    IN  IF A = {} THEN NoVote
        ELSE LET m == CHOOSE m \in A : \A n \in A : LessEq(n.bal, m.bal)
             IN  [bal |-> m.bal, val |-> m.val]

TypeOK ==
    /\ prepareMsgs \subseteq Prepares
    /\ promiseMsgs \subseteq Promises
    /\ acceptMsgs \subseteq Accepts
    /\ acceptedMsgs \subseteq Accepteds
    /\ aPromised \in [Acceptors -> Ballots \cup {Zero}]
    /\ pBallot \in [Proposers -> Ballots \cup {Zero}]
    /\ pNext \in [Proposers -> 0 .. NumSlots]
    /\ submitted \subseteq Commands

Init ==
    /\ prepareMsgs = {} /\ promiseMsgs = {} /\ acceptMsgs = {} /\ acceptedMsgs = {}
    /\ aPromised = [a \in Acceptors |-> Zero]
    /\ pBallot = [p \in Proposers |-> Zero]
    /\ pNext = [p \in Proposers |-> 0]
    /\ submitted = {}

-----------------------------------------------------------------------------
(* What the Accepted messages say.                                         *)

\* The values chosen in slot s if the acceptors M govern it: accepted in one
\* ballot by a majority of M, counting members only. Planted
\* "NonMemberVotes": any acceptor's vote counts towards M's majority.
ChosenBy(s, M) ==
    LET A == {m \in acceptedMsgs : m.slot = s}
        counted == IF Bug = "NonMemberVotes" THEN Acceptors ELSE M
        Voters(m) == {n.src : n \in {n \in A : n.bal = m.bal /\ n.val = m.val}}
    IN  {m.val : m \in {m \in A : Cardinality(Voters(m) \cap counted) >= Majority(M)}}

\* The configurations after replaying slots 0 .. k-1, when D[t + 1] is what
\* slot t may have decided: one for each decided log an agent may hold.
RECURSIVE Replayed(_, _)
Replayed(D, k) == IF k = 0 THEN {Initial}
                  ELSE {Apply(c, v) : c \in Replayed(D, k - 1), v \in D[k]}

\* The configurations the decided logs of slots 0 .. j-1 give slot s, for
\* every j in lengths such that some agent may know that much of the log.
ViewsFrom(D, s, lengths) ==
    LET G == Governing(s)
    IN  UNION {Replayed(D, IF j < G THEN j ELSE G) :
                  j \in {j \in lengths : \A t \in 1 .. j : D[t] # {}}}

\* The configurations an agent may judge slot s by: those of the decided logs
\* it may know, which reach Known(s) (with exact: those of the logs of just
\* the slots config(s) depends on, the same unless "NaiveSwap"). D covers the
\* slots below s at least.
Views(D, s, exact) ==
    LET G == Governing(s)
        lengths == IF exact THEN {G} ELSE Known(s) .. s
    IN  ViewsFrom(D, s, lengths)

\* D extended, slot by slot, to the first n slots.
RECURSIVE Table(_, _, _)
Table(D, exact, n) ==
    IF Len(D) = n THEN D
    ELSE Table(Append(D, UNION {ChosenBy(Len(D), c.members) : c \in Views(D, Len(D), exact)}),
               exact, n)

\* Decided[s + 1]: the values a learner may decide in slot s (Learner: a
\* per-ballot tally of config(s)'s members, config(s) from the log it has
\* decided; the value of the Accepted that reaches the majority, one value
\* per ballot and slot: OneValuePerBallot).
Decided == Table(<<>>, FALSE, NumSlots)

\* Chosen[s + 1]: the values chosen in slot s, by config(s) as the values
\* chosen in the slots it depends on define it (PMS 2.2 with config(s)).
Chosen == Table(<<>>, TRUE, NumSlots)

-----------------------------------------------------------------------------
(* Clients.                                                                *)

Submit(v) ==
    /\ v \notin submitted
    /\ submitted' = submitted \cup {v}
    /\ UNCHANGED <<msgVars, aPromised, pBallot, pNext>>

(* Phase 1a (Proposer._start_election): a new ballot, a Prepare for every  *)
(* slot from a first slot that has every slot below it decided.            *)
StartPhase1(p) ==
    LET b == <<pBallot[p][1] + 1, p>>
        D == Decided
    IN
    /\ b \in Ballots
    /\ \E f \in {f \in Slots : \A t \in 0 .. f - 1 : D[t + 1] # {}} :
        /\ pBallot' = [pBallot EXCEPT ![p] = b]
        /\ pNext' = [pNext EXCEPT ![p] = f]
        /\ prepareMsgs' = prepareMsgs \cup {[bal |-> b, first |-> f]}
    /\ UNCHANGED <<promiseMsgs, acceptMsgs, acceptedMsgs, aPromised, submitted>>

(* Phase 1b (Acceptor.on_prepare): promise a strictly higher ballot and    *)
(* report the votes from the first slot on. Any acceptor, member or not.   *)
Promise(a) ==
    \E m \in prepareMsgs :
        /\ Less(aPromised[a], m.bal)
        /\ aPromised' = [aPromised EXCEPT ![a] = m.bal]
        /\ promiseMsgs' = promiseMsgs \cup
              {[src |-> a, bal |-> m.bal, first |-> m.first,
                votes |-> [s \in Slots |-> IF s >= m.first THEN VoteOf(a, s) ELSE NoVote]]}
    /\ UNCHANGED <<prepareMsgs, acceptMsgs, acceptedMsgs, pBallot, pNext, submitted>>

(* Phase 2a (Proposer: _become_leader, _propose_pending, and the wait for  *)
(* a new configuration's promises). The proposer with ballot b proposes in *)
(* its next slot s once it knows config(s) (every decision <= s - Alpha)   *)
(* and a majority Q of config(s)'s members promised b, reporting votes in  *)
(* s: it adopts the highest-ballot vote they report, else any submitted    *)
(* command or the no-op. Planted "OldQuorumPhase1": Q is a majority of the *)
(* initial configuration whatever config(s) is.                            *)
Adoptable(R) ==
    IF R = {} THEN submitted \cup {NoOp}
    ELSE {w.val : w \in {w \in R : \A u \in R : LessEq(u.bal, w.bal)}}

\* A proposer's window: it proposes in s once it knows the log below
\* ProposerKnown(s). Planted "WindowPastAlpha": one slot less.
ProposerKnown(s) ==
    IF Bug = "WindowPastAlpha" /\ Known(s) > 0 THEN Known(s) - 1 ELSE Known(s)

Propose(p) ==
    LET b == pBallot[p]
        s == pNext[p]
        promised == {m \in promiseMsgs : m.bal = b}
    IN
    /\ b # Zero
    /\ s < NumSlots
    /\ \E c \in ViewsFrom(Table(<<>>, FALSE, s), s, ProposerKnown(s) .. s) :
       \E Q \in Quorums(IF Bug = "OldQuorumPhase1" THEN InitialMembers ELSE c.members) :
        /\ \A a \in Q : \E m \in promised : m.src = a
        /\ LET R == {m.votes[s] : m \in {m \in promised : m.src \in Q}} \ {NoVote}
           IN  \E v \in Adoptable(R) :
                  acceptMsgs' = acceptMsgs \cup
                      {[bal |-> b, slot |-> s, val |-> v, to |-> c.members]}
    /\ pNext' = [pNext EXCEPT ![p] = s + 1]
    /\ UNCHANGED <<prepareMsgs, promiseMsgs, acceptedMsgs, aPromised, pBallot, submitted>>

(* Phase 2b (Acceptor.on_accept): accept at or above the promise, raise    *)
(* it. Any acceptor, member of config(s) or not.                           *)
Accept(a) ==
    \E m \in acceptMsgs :
        /\ a \in m.to \/ StrayVotes
        /\ LessEq(aPromised[a], m.bal)
        /\ aPromised' = [aPromised EXCEPT ![a] = m.bal]
        /\ acceptedMsgs' = acceptedMsgs \cup
              {[src |-> a, bal |-> m.bal, slot |-> m.slot, val |-> m.val]}
    /\ UNCHANGED <<prepareMsgs, promiseMsgs, acceptMsgs, pBallot, pNext, submitted>>

Next ==
    \/ \E v \in Commands : Submit(v)
    \/ \E p \in Proposers : StartPhase1(p) \/ Propose(p)
    \/ \E a \in Acceptors : Promise(a) \/ Accept(a)

Spec == Init /\ [][Next]_vars

-----------------------------------------------------------------------------
(* Safety.                                                                 *)

(* Agreement: whichever Accepted messages each learner counts, and by      *)
(* whichever decided log it judges config(s), at most one value can be     *)
(* decided in a slot.                                                      *)
Agreement == LET D == Decided IN \A s \in Slots : Cardinality(D[s + 1]) <= 1

(* At most one value is chosen per slot, by config(s) (PMS 2.1).           *)
ChosenUnique == LET C == Chosen IN \A s \in Slots : Cardinality(C[s + 1]) <= 1

(* A learner decides only a chosen value.                                  *)
LearnedIsChosen ==
    LET D == Decided  C == Chosen IN \A s \in Slots : D[s + 1] \subseteq C[s + 1]

(* Only a submitted command or the no-op can be decided.                   *)
Validity == LET D == Decided IN \A s \in Slots : D[s + 1] \subseteq submitted \cup {NoOp}

(* Every agent judges a slot by one configuration, however much of the log *)
(* past s - Alpha it knows: the alpha window's point.                      *)
OneConfigPerSlot ==
    LET D == Decided IN \A s \in Slots : Cardinality(Views(D, s, FALSE)) <= 1

(* A ballot proposes at most one value per slot.                           *)
OneValuePerBallot ==
    \A m, n \in acceptMsgs : m.bal = n.bal /\ m.slot = n.slot => m.val = n.val

(* Not vacuous: the model reaches a value chosen in a slot that a new      *)
(* configuration governs. Not an invariant of the protocol: the tests ask  *)
(* TLC for a state that violates it (MultiPaxosReconfig_reached.cfg).      *)
NothingChosenUnderNewConfig ==
    LET C == Chosen IN
    \A s \in Slots : \A c \in Views(C, s, TRUE) : c.epoch > 0 => C[s + 1] = {}

(* Acceptors that belong to the same configurations are interchangeable  *)
(* (TLC's SYMMETRY), and so are values. TLC rejects a symmetry of one      *)
(* permutation: a cfg where nothing is interchangeable leaves it out.      *)
Configurations == {InitialMembers} \cup NewConfigs
Signature(a) == {M \in Configurations : a \in M}
AcceptorPerms ==
    {x \in Permutations(Acceptors) : \A a \in Acceptors : Signature(x[a]) = Signature(a)}
Symmetry == {x @@ y : x \in AcceptorPerms, y \in Permutations(Values)}
=============================================================================
