//! What a room keeps of its past for replay and for its page: its newest
//! events, bounded in number and in bytes per room (`--history`,
//! `--history-bytes`), and in bytes over every room together
//! (`--max-history-bytes`), so that no number of rooms full of the largest
//! messages can take the machine's memory.
//!
//! Bytes are those of the events' SSE frames, which is what a kept event costs
//! (its text lives only there). The oldest go first. Once every room together
//! holds the total, a room's new event displaces its own oldest (new rooms are
//! refused meanwhile: see [`Budget::full`]); each room always keeps its newest
//! event, so that what its page and its streams last saw is never a gap (the
//! total may so be passed by at most one frame a room).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::Event;

/// The bounds every room's history keeps to, and what all of them hold now:
/// one for the rooms of a process (or the feeds of an instance), shared.
#[derive(Debug)]
pub struct Budget {
    /// Events one room keeps.
    events: usize,
    /// Bytes of frames one room keeps.
    room_bytes: usize,
    /// Bytes of frames every room together keeps.
    total_bytes: usize,
    /// Bytes of frames every room keeps now.
    held: AtomicUsize,
    /// Events let go to keep to the byte bounds (not those beyond the count).
    trimmed: AtomicU64,
}

impl Budget {
    pub fn new(events: usize, room_bytes: usize, total_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            events: events.max(1),
            room_bytes,
            total_bytes,
            held: AtomicUsize::new(0),
            trimmed: AtomicU64::new(0),
        })
    }

    /// No new room now: every room together leaves less free than one room
    /// may keep (or than half the total, when one room may keep more).
    /// Rooms open go on, each new event pushing out its room's oldest once
    /// the total is reached, so the total alone would hardly ever be seen.
    pub fn full(&self) -> bool {
        let room = self.room_bytes.min(self.total_bytes / 2);
        self.held.load(Ordering::Relaxed) > self.total_bytes - room
    }

    /// Bytes of frames kept now, for the metrics.
    pub fn held(&self) -> u64 {
        u64::try_from(self.held.load(Ordering::Relaxed)).unwrap_or(u64::MAX)
    }

    /// Events let go to keep to the byte bounds so far, for the metrics.
    pub fn trimmed(&self) -> u64 {
        self.trimmed.load(Ordering::Relaxed)
    }
}

/// One room's kept events, oldest first.
#[derive(Debug)]
pub struct History {
    events: VecDeque<Arc<Event>>,
    /// Bytes of the frames of `events`.
    bytes: usize,
    budget: Arc<Budget>,
}

impl History {
    pub fn new(budget: Arc<Budget>) -> Self {
        Self {
            events: VecDeque::new(),
            bytes: 0,
            budget,
        }
    }

    /// Keeps `event` as the newest, letting the oldest go while the room (or
    /// every room together) holds more than it may; the id of the newest event
    /// let go, if any.
    pub fn push(&mut self, event: Arc<Event>) -> Option<u64> {
        let size = event.frame().len();
        self.bytes += size;
        self.budget.held.fetch_add(size, Ordering::Relaxed);
        self.events.push_back(event);
        let mut dropped = None;
        while self.events.len() > 1 {
            let by_count = self.events.len() > self.budget.events;
            let by_bytes = self.bytes > self.budget.room_bytes
                || self.budget.held.load(Ordering::Relaxed) > self.budget.total_bytes;
            if !by_count && !by_bytes {
                break;
            }
            let Some(oldest) = self.events.pop_front() else {
                break;
            };
            self.release(oldest.frame().len());
            if !by_count {
                self.budget.trimmed.fetch_add(1, Ordering::Relaxed);
            }
            dropped = Some(oldest.id);
        }
        dropped
    }

    /// Lets every event go.
    pub fn clear(&mut self) {
        self.events.clear();
        self.release(self.bytes);
    }

    fn release(&mut self, size: usize) {
        self.bytes -= size;
        self.budget.held.fetch_sub(size, Ordering::Relaxed);
    }

    pub fn front(&self) -> Option<&Arc<Event>> {
        self.events.front()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Event>> {
        self.events.iter()
    }
}

impl Drop for History {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::DisplayName;
    use crate::rooms::EventKind;

    fn event(id: u64, text: &str) -> Arc<Event> {
        let name = DisplayName::parse("alice").unwrap();
        Arc::new(Event::new(id, EventKind::Message, &name, Some(text)))
    }

    fn ids(history: &History) -> Vec<u64> {
        history.iter().map(|e| e.id).collect()
    }

    /// The oldest go first, by count and by bytes; the newest always stays.
    #[test]
    fn a_room_keeps_its_newest_within_its_count_and_bytes() {
        let events: Vec<_> = (1..=5).map(|id| event(id, &"x".repeat(100))).collect();
        let size = |ids: std::ops::RangeInclusive<usize>| -> usize {
            ids.map(|id| events[id - 1].frame().len()).sum()
        };
        let budget = Budget::new(4, size(3..=5), usize::MAX);
        let mut history = History::new(Arc::clone(&budget));
        for event in &events {
            history.push(Arc::clone(event));
        }
        assert_eq!(ids(&history), [3, 4, 5], "three frames fit in the bytes");
        assert_eq!(budget.held(), size(3..=5) as u64);
        assert_eq!(budget.trimmed(), 2, "two went by bytes, none by count");

        history.push(event(6, &"x".repeat(10_000)));
        assert_eq!(
            ids(&history),
            [6],
            "a frame larger than the bound stays alone"
        );
        drop(history);
        assert_eq!(budget.held(), 0, "a closed room holds nothing");
    }

    /// At the default bounds (`--history-bytes 256K`), a room of 100 messages
    /// of 2,000 plain characters, from a member of the longest name, keeps
    /// them all: ordinary rooms are trimmed by count, not by bytes.
    #[test]
    fn the_default_bound_keeps_a_hundred_longest_plain_messages() {
        let budget = Budget::new(100, 256 << 10, 512 << 20);
        let mut history = History::new(Arc::clone(&budget));
        let name = DisplayName::parse(&"n".repeat(32)).unwrap();
        for id in 1..=100 {
            let text = "a".repeat(2_000);
            history.push(Arc::new(Event::new(
                id,
                EventKind::Message,
                &name,
                Some(&text),
            )));
        }
        assert_eq!(history.iter().count(), 100);
        assert_eq!(budget.trimmed(), 0);
    }

    /// Once every room together holds the total, a room's new events displace
    /// its own oldest, and new rooms are refused.
    #[test]
    fn rooms_together_keep_within_the_total() {
        let events: Vec<_> = (1..=5).map(|id| event(id, "hello")).collect();
        let total: usize = events[..4].iter().map(|e| e.frame().len()).sum();
        let budget = Budget::new(100, usize::MAX, total);
        let mut first = History::new(Arc::clone(&budget));
        let mut second = History::new(Arc::clone(&budget));
        first.push(Arc::clone(&events[0]));
        assert!(!budget.full(), "a quarter held: room for a room of half");
        for event in &events[1..3] {
            first.push(Arc::clone(event));
        }
        assert!(budget.full(), "three quarters held");
        second.push(Arc::clone(&events[3]));
        second.push(Arc::clone(&events[4]));
        assert_eq!(ids(&second), [5], "its own oldest made room");
        assert_eq!(ids(&first), [1, 2, 3], "the other room keeps what it had");
        assert!(budget.held() <= (total + events[4].frame().len()) as u64);
    }
}
