//! Non-blocking readbacks for recorders: a few staging buffers, each copied into inside the host's
//! encoder, mapped after the host says it submitted, and handed out (oldest first) once the GPU has
//! finished the copy.

use crate::gpu::{Gpu, Readback};

enum State<M> {
    /// Free to record a copy into.
    Free,
    /// A copy was recorded into an encoder that has not been submitted yet.
    Recorded(u64, M),
    /// Submitted and asked to map.
    Requested(u64, M),
}

/// A small pool of [`Readback`]s of `words` words each, carrying what each copy was (`M`).
pub(crate) struct PendingReads<M> {
    slots: Vec<(Readback, State<M>)>,
    words: usize,
    next_seq: u64,
    /// Copies that could not be recorded because every slot was busy.
    dropped: u64,
}

impl<M> PendingReads<M> {
    pub(crate) fn new(gpu: &Gpu, slots: usize, words: usize) -> PendingReads<M> {
        PendingReads {
            slots: (0..slots.max(1)).map(|_| (Readback::new(gpu, words), State::Free)).collect(),
            words,
            next_seq: 0,
            dropped: 0,
        }
    }

    /// Bytes of staging memory the pool holds.
    pub(crate) fn bytes(&self) -> u64 {
        (self.slots.len() * self.words.max(1) * 4) as u64
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Records a copy of `words` words of `src` from word `at` into a free slot; false (and the
    /// copy is dropped) when every slot is still waiting for the host to take its data.
    pub(crate) fn record(
        &mut self,
        enc: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        at: usize,
        meta: M,
    ) -> bool {
        let Some((readback, state)) = self.slots.iter_mut().find(|(_, s)| matches!(s, State::Free)) else {
            self.dropped += 1;
            return false;
        };
        readback.record_copy(enc, src, at);
        *state = State::Recorded(self.next_seq, meta);
        self.next_seq += 1;
        true
    }

    /// After the host's submit: asks for the mapping of every copy recorded since the last call.
    pub(crate) fn submitted(&mut self) {
        for (readback, state) in &mut self.slots {
            if matches!(state, State::Recorded(..)) {
                let State::Recorded(seq, meta) = std::mem::replace(state, State::Free) else {
                    unreachable!("matched above")
                };
                readback.request();
                *state = State::Requested(seq, meta);
            }
        }
    }

    /// The oldest finished copy, if any; never waits. The caller polls the device first.
    pub(crate) fn take(&mut self) -> Option<(M, Vec<f32>)> {
        let oldest = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, (_, s))| match s {
                State::Requested(seq, _) => Some((*seq, i)),
                _ => None,
            })
            .min()?;
        let (readback, state) = &mut self.slots[oldest.1];
        if let Some(values) = readback.try_take() {
            let State::Requested(_, meta) = std::mem::replace(state, State::Free) else {
                unreachable!("selected as requested")
            };
            return Some((meta, values));
        }
        // A failed mapping leaves the readback idle: free the slot, the data is lost.
        if readback.is_idle() {
            *state = State::Free;
            self.dropped += 1;
        }
        None
    }
}
