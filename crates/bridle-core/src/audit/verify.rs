//! Checking a stored chain: every record on its own (content against hash,
//! link to the record before it, no gaps), then against anchors the chain
//! cannot forge — signed checkpoints and the stored head. Every broken
//! record is reported, not only the first, and a break does not hide later
//! ones: each record is judged against its stored neighbour.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{GENESIS, HashFormat, StoredEvent};

/// What a checkpoint signs: the chain had `head` as the hash of event `seq`
/// at `time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub seq: u64,
    pub head: String,
    pub time: Timestamp,
}

/// A checkpoint with its compact JWS (the same `{seq, head, time}` as the
/// payload, signed with a server signing key named by `kid`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    pub seq: u64,
    pub head: String,
    pub time: Timestamp,
    pub jws: String,
}

impl SignedCheckpoint {
    /// Whether the signed payload says what the plain fields say.
    pub fn matches(&self, payload: &Checkpoint) -> bool {
        payload.seq == self.seq && payload.head == self.head && payload.time == self.time
    }
}

/// Why a record is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The content does not match its hash.
    Altered,
    /// Its `prev_hash` is not the hash of the record before it.
    Unlinked,
    /// The record with this `seq` is missing (deleted).
    Missing,
    /// Its `seq` comes after a later one.
    OutOfOrder,
    /// An old-format record after a new-format one (nothing writes that).
    Downgraded,
    /// Its hash differs from the head a signed checkpoint recorded for it.
    CheckpointMismatch,
    /// Its hash differs from the stored head (`audit_head`).
    HeadMismatch,
    /// The log ends before a checkpoint's (or the stored head's) `seq`: the
    /// records from this one on were removed.
    Truncated,
    /// A checkpoint whose signature does not verify or whose fields differ
    /// from what was signed.
    BadCheckpoint,
}

/// One finding of a verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub seq: u64,
    pub kind: ProblemKind,
}

/// The result of checking a whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    /// How many records were read.
    pub events: u64,
    /// Hash of the last event of the intact prefix (the genesis value for an
    /// empty log).
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<u64>,
    /// Every reported `seq`, ascending.
    pub broken: Vec<u64>,
    /// What is wrong with each, in `seq` order.
    pub problems: Vec<Problem>,
    /// The latest signed checkpoint the chain was checked against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_seq: Option<u64>,
}

/// Incremental chain verifier: add anchors, then feed records in `seq` order.
#[derive(Debug, Clone)]
pub struct Verifier {
    expected_seq: u64,
    /// The stored hash of the previous record (what the next must link to).
    link: String,
    /// Hash at the end of the intact prefix.
    head: String,
    intact: bool,
    events: u64,
    last_seq: u64,
    seen_exact: bool,
    /// Hashes some anchor says the event at a `seq` has.
    anchors: BTreeMap<u64, Vec<(String, ProblemKind)>>,
    latest_checkpoint: Option<u64>,
    problems: Vec<Problem>,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// Verify from the first event.
    pub fn new() -> Self {
        Self::resume(0, GENESIS)
    }

    /// Verify the records after `seq`, whose hash is known to be `hash` (a
    /// checkpoint): the next record must be `seq + 1` and link to it.
    pub fn resume(seq: u64, hash: &str) -> Self {
        Self {
            expected_seq: seq + 1,
            link: hash.to_owned(),
            head: hash.to_owned(),
            intact: true,
            events: 0,
            last_seq: seq,
            seen_exact: false,
            anchors: BTreeMap::new(),
            latest_checkpoint: None,
            problems: Vec::new(),
        }
    }

    /// The `seq` after which records are to be fed.
    pub fn start_after(&self) -> u64 {
        self.expected_seq - 1
    }

    /// A checkpoint whose signature the caller has verified.
    pub fn checkpoint(&mut self, cp: &Checkpoint) {
        self.anchor(cp.seq, &cp.head, ProblemKind::CheckpointMismatch);
        self.latest_checkpoint = self.latest_checkpoint.max(Some(cp.seq));
    }

    /// A checkpoint that does not verify: reported, and not trusted.
    pub fn bad_checkpoint(&mut self, seq: u64) {
        self.report(seq, ProblemKind::BadCheckpoint);
    }

    /// The stored head: the log must reach `seq`, whose hash is `hash`.
    pub fn head(&mut self, seq: u64, hash: &str) {
        self.anchor(seq, hash, ProblemKind::HeadMismatch);
    }

    fn anchor(&mut self, seq: u64, hash: &str, kind: ProblemKind) {
        if seq > self.start_after() {
            self.anchors
                .entry(seq)
                .or_default()
                .push((hash.to_owned(), kind));
        }
    }

    fn report(&mut self, seq: u64, kind: ProblemKind) {
        self.intact = false;
        self.problems.push(Problem { seq, kind });
    }

    pub fn push(&mut self, event: &StoredEvent) {
        self.events += 1;
        let before = self.problems.len();
        if event.seq > self.expected_seq {
            // A gap: the first missing record is where the chain breaks.
            self.report(self.expected_seq, ProblemKind::Missing);
        } else if event.seq < self.expected_seq {
            self.report(event.seq, ProblemKind::OutOfOrder);
        } else if event.prev_hash != self.link {
            self.report(event.seq, ProblemKind::Unlinked);
        }
        if !event.is_intact() {
            self.report(event.seq, ProblemKind::Altered);
        }
        match event.format {
            HashFormat::Exact => self.seen_exact = true,
            HashFormat::Legacy if self.seen_exact => {
                self.report(event.seq, ProblemKind::Downgraded);
            }
            HashFormat::Legacy | HashFormat::Unknown(_) => {}
        }
        let mismatched: Vec<ProblemKind> = self
            .anchors
            .get(&event.seq)
            .into_iter()
            .flatten()
            .filter(|(hash, _)| *hash != event.hash)
            .map(|(_, kind)| *kind)
            .collect();
        for kind in mismatched {
            self.report(event.seq, kind);
        }
        if self.intact && self.problems.len() == before {
            self.head.clone_from(&event.hash);
        }
        self.link.clone_from(&event.hash);
        self.expected_seq = self.expected_seq.max(event.seq + 1);
        self.last_seq = self.last_seq.max(event.seq);
    }

    pub fn finish(mut self) -> Verification {
        let beyond = self.anchors.range(self.last_seq + 1..).next().is_some();
        if beyond {
            self.report(self.last_seq + 1, ProblemKind::Truncated);
        }
        self.problems.sort_by_key(|p| (p.seq, p.kind));
        self.problems.dedup();
        let mut broken: Vec<u64> = self.problems.iter().map(|p| p.seq).collect();
        broken.dedup();
        Verification {
            ok: self.problems.is_empty(),
            events: self.events,
            head: self.head,
            first_bad_seq: broken.first().copied(),
            broken,
            problems: self.problems,
            checkpoint_seq: self.latest_checkpoint,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{EventBody, EventType, hash_exact, hash_legacy};
    use super::*;

    fn body(n: i64) -> EventBody {
        let mut b = EventBody::new(
            EventType::Decision,
            Timestamp::from_second(1_800_000_000 + n).unwrap(),
            "agent:a",
        );
        b.action = Some(format!("tool.{n}"));
        b
    }

    fn chain(n: u64) -> Vec<StoredEvent> {
        let mut prev = GENESIS.to_owned();
        (1..=n)
            .map(|seq| {
                let e = StoredEvent::seal(seq, &body(seq as i64), &prev).unwrap();
                prev.clone_from(&e.hash);
                e
            })
            .collect()
    }

    fn verify_with(events: &[StoredEvent], v: &mut Verifier) -> Verification {
        events.iter().for_each(|e| v.push(e));
        v.clone().finish()
    }

    fn verify(events: &[StoredEvent]) -> Verification {
        verify_with(events, &mut Verifier::new())
    }

    fn alter(e: &mut StoredEvent) {
        e.body = e.body.replace("tool.", "evil.");
    }

    /// Rewrite `events[from..]` as an attacker holding the database would:
    /// content changed, every later hash recomputed.
    fn recompute(events: &mut [StoredEvent], from: usize) {
        let mut prev = if from == 0 {
            GENESIS.to_owned()
        } else {
            events[from - 1].hash.clone()
        };
        for e in &mut events[from..] {
            e.prev_hash.clone_from(&prev);
            e.hash = hash_exact(e.seq, &e.body, &prev);
            prev.clone_from(&e.hash);
        }
    }

    fn cp(e: &StoredEvent) -> Checkpoint {
        Checkpoint {
            seq: e.seq,
            head: e.hash.clone(),
            time: Timestamp::from_second(1_900_000_000).unwrap(),
        }
    }

    #[test]
    fn an_intact_chain_verifies() {
        let events = chain(5);
        let r = verify(&events);
        assert!(r.ok, "{r:?}");
        assert_eq!(r.events, 5);
        assert_eq!(r.head, events[4].hash);
        assert!(r.broken.is_empty() && r.first_bad_seq.is_none());
        assert!(verify(&[]).ok);
    }

    #[test]
    fn every_altered_record_is_listed() {
        let mut events = chain(8);
        alter(&mut events[2]);
        alter(&mut events[5]);
        let r = verify(&events);
        assert!(!r.ok);
        assert_eq!(r.broken, vec![3, 6]);
        assert_eq!(r.first_bad_seq, Some(3));
        assert_eq!(r.head, events[1].hash);
        assert!(r.problems.iter().all(|p| p.kind == ProblemKind::Altered));
    }

    #[test]
    fn deleting_or_reordering_is_detected() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(verify(&events).broken, vec![2]);
        let mut events = chain(5);
        events.swap(3, 4);
        assert_eq!(verify(&events).first_bad_seq, Some(4));
    }

    #[test]
    fn recomputing_one_hash_does_not_hide_tampering() {
        let mut events = chain(4);
        alter(&mut events[1]);
        events[1].hash = hash_exact(2, &events[1].body, &events[1].prev_hash);
        let r = verify(&events);
        assert_eq!(r.broken, vec![3]);
        assert_eq!(r.problems[0].kind, ProblemKind::Unlinked);
    }

    #[test]
    fn a_recomputed_chain_is_caught_by_a_checkpoint() {
        let mut events = chain(6);
        let signed = cp(&events[4]);
        alter(&mut events[1]);
        recompute(&mut events, 1);
        assert!(verify(&events).ok, "the chain alone cannot see it");
        let mut v = Verifier::new();
        v.checkpoint(&signed);
        let r = verify_with(&events, &mut v);
        assert!(!r.ok);
        assert_eq!(r.broken, vec![5]);
        assert_eq!(r.problems[0].kind, ProblemKind::CheckpointMismatch);
        assert_eq!(r.checkpoint_seq, Some(5));
    }

    #[test]
    fn truncation_is_caught_by_a_checkpoint_or_the_head() {
        let mut events = chain(6);
        let signed = cp(&events[5]);
        events.truncate(4);
        assert!(verify(&events).ok, "the chain alone cannot see it");
        let mut v = Verifier::new();
        v.checkpoint(&signed);
        let r = verify_with(&events, &mut v);
        assert_eq!(r.broken, vec![5]);
        assert_eq!(r.problems[0].kind, ProblemKind::Truncated);
        let mut v = Verifier::new();
        v.head(6, &signed.head);
        assert_eq!(verify_with(&events, &mut v).broken, vec![5]);
    }

    #[test]
    fn a_bad_checkpoint_is_reported() {
        let events = chain(3);
        let mut v = Verifier::new();
        v.bad_checkpoint(2);
        let r = verify_with(&events, &mut v);
        assert!(!r.ok);
        assert_eq!(r.problems[0].kind, ProblemKind::BadCheckpoint);
    }

    #[test]
    fn resuming_checks_only_the_segment_after_a_checkpoint() {
        let events = chain(6);
        let mut v = Verifier::resume(3, &events[2].hash);
        assert_eq!(v.start_after(), 3);
        assert!(verify_with(&events[3..], &mut v).ok);
        let mut v = Verifier::resume(3, &events[1].hash);
        assert_eq!(verify_with(&events[3..], &mut v).broken, vec![4]);
    }

    #[test]
    fn a_float_that_does_not_round_trip_cannot_poison_the_chain() {
        let mut b = body(1);
        b.args = Some(serde_json::from_str(r#"{"value": 7.370437700706684e+208}"#).unwrap());
        let sealed = StoredEvent::seal(1, &b, GENESIS).unwrap();
        assert!(sealed.is_intact());
        let mut second = body(2);
        second.args = Some(serde_json::json!({"n": 1}));
        let next = StoredEvent::seal(2, &second, &sealed.hash).unwrap();
        let mut events = vec![sealed, next];
        assert!(verify(&events).ok);
        // Tampering after it is still seen.
        events[1].body = events[1].body.replace("\"n\":1", "\"n\":2");
        assert_eq!(verify(&events).broken, vec![2]);
    }

    /// The previous release's rule, as it computed it: over the JSON of
    /// `{seq, body}` built from the in-memory body.
    fn previous_release_hash(seq: u64, body: &EventBody, prev_hash: &str) -> String {
        use sha2::{Digest, Sha256};
        let content = serde_json::json!({ "seq": seq, "body": body });
        let mut h = Sha256::new();
        h.update(prev_hash.as_bytes());
        h.update(b"\n");
        h.update(serde_json::to_vec(&content).unwrap());
        super::super::hex(&h.finalize())
    }

    #[test]
    fn rows_of_the_previous_format_still_verify() {
        // Written as the previous release did, a float that does not
        // survive a parse included: verified over the stored bytes, it is
        // intact.
        let mut events = Vec::new();
        let mut prev = GENESIS.to_owned();
        for seq in 1..=3u64 {
            let mut b = body(seq as i64);
            b.args = Some(
                serde_json::from_str(r#"{"value": 7.370437700706684e+208, "s": "a\"b"}"#).unwrap(),
            );
            let hash = previous_release_hash(seq, &b, &prev);
            let text = serde_json::to_string(&b).unwrap();
            assert_eq!(hash_legacy(seq, &text, &prev), hash);
            events.push(StoredEvent {
                seq,
                format: HashFormat::Legacy,
                body: text,
                prev_hash: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        let next = StoredEvent::seal(4, &body(4), &prev).unwrap();
        events.push(next);
        assert!(verify(&events).ok, "{:?}", verify(&events));
        alter(&mut events[1]);
        assert_eq!(verify(&events).broken, vec![2]);
        // An old-format row after a new one is not something Bridle writes.
        let mut events = chain(3);
        events[2].format = HashFormat::Legacy;
        let r = verify(&events);
        assert!(r.problems.contains(&Problem {
            seq: 3,
            kind: ProblemKind::Downgraded
        }));
    }
}
