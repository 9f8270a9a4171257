//! The reference model: SPEC section 3 written as plainly as possible, with
//! connection ids instead of connections and milliseconds instead of clocks.
//!
//! - reuse: core idle connections first in first out, extra ones last in
//!   first out; a returned connection is core while fewer than `min_idle`
//!   are idle as core, otherwise extra;
//! - expiry: no acquire hands out a connection past its lifetime (or an extra
//!   one past its idle timeout); due ones met on the way are disposed; a
//!   connection that expired while checked out is disposed when returned;
//! - waiting: per endpoint FIFO with direct hand-off of a released
//!   connection; freed room goes to the endpoint's oldest waiter, else to
//!   waiters for global room (oldest first), evicting the idle connection
//!   with the earliest deadline on any endpoint if needed;
//! - burst: a returned connection is closed while the endpoint holds
//!   `max_size` or more and nobody waits; `max_idle` caps idle connections;
//! - inline collection on release of at most `dispose_batch_size` due
//!   connections of the releasing endpoint (0: `floor(log2(n + 1)) + 1`);
//!   or a background collector that disposes everything due as soon as it
//!   is due (here: when time advances), endpoint by endpoint;
//! - health: a reused connection is checked once per acquire, a dead one is
//!   disposed and the acquire goes on (a fresh one is never checked);
//! - cancellation: a cancelled waiter leaves its queues; close: waiters get
//!   `Closed`, idle connections are disposed, returned ones too.

use std::collections::{BTreeMap, VecDeque};

pub use kpool::DisposeReason as Reason;

/// The pool settings a case runs with (timers in whole seconds).
#[derive(Clone, Debug)]
pub struct Settings {
    pub max_size: usize,
    pub min_idle: usize,
    pub max_idle: Option<usize>,
    pub burst_limit: Option<usize>,
    pub total_max_size: Option<usize>,
    pub idle_timeout_s: Option<u64>,
    pub max_lifetime_s: Option<u64>,
    pub dispose_batch_size: usize,
    /// A background collector instead of inline collection on release.
    pub background: bool,
}

impl Settings {
    pub fn config(&self) -> kpool::Config {
        use std::time::Duration;
        let mut c = kpool::Config::default();
        c.max_size = self.max_size;
        c.min_idle = self.min_idle;
        c.max_idle = self.max_idle;
        c.burst_limit = self.burst_limit;
        c.total_max_size = self.total_max_size;
        c.idle_timeout = self.idle_timeout_s.map(Duration::from_secs);
        c.max_lifetime = self.max_lifetime_s.map(Duration::from_secs);
        c.lifetime_jitter = false;
        c.acquire_timeout = Some(Duration::from_millis(ACQUIRE_TIMEOUT_MS));
        c.create_timeout = None;
        c.retry_limit = 0;
        c.validate_on_acquire = true;
        c.validation_bypass = std::time::Duration::ZERO;
        c.collection = if self.background { kpool::Collection::Background } else { kpool::Collection::Inline };
        c.dispose_batch_size = self.dispose_batch_size;
        c.fill_min_idle = false;
        c
    }

    fn limit(&self) -> usize {
        self.burst_limit.unwrap_or(self.max_size)
    }
}

/// Off the whole-second grid that time advances on, so a deadline never ties
/// with the clock (tokio rounds timers to the millisecond).
pub const ACQUIRE_TIMEOUT_MS: u64 = 10_500;

/// One step of a sequence. Indices pick among the guards held / acquires
/// pending at that moment.
#[derive(Clone, Debug)]
pub enum Op {
    Acquire(u8),
    Release(proptest::sample::Index),
    Broken(proptest::sample::Index),
    Take(proptest::sample::Index),
    Cancel(proptest::sample::Index),
    /// The connection of a held guard dies: its next check fails.
    Kill(proptest::sample::Index),
    /// Seconds.
    Advance(u64),
    Close,
}

/// How an acquire ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Res {
    Conn(u64),
    Closed,
    Timeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Req {
    Waiting,
    GrantedConn(u64),
    GrantedCreate,
    GrantedClosed,
}

#[derive(Clone, Debug)]
struct Conn {
    ep: usize,
    created: u64,
    returned: u64,
    uses: u64,
}

#[derive(Default, Debug)]
struct Ep {
    core: VecDeque<u64>,
    extra: VecDeque<u64>,
    in_use: usize,
    creating: usize,
    waiters: VecDeque<u64>,
}

impl Ep {
    fn idle(&self) -> usize {
        self.core.len() + self.extra.len()
    }

    fn live(&self) -> usize {
        self.idle() + self.in_use + self.creating
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Model {
    s: Settings,
    /// Milliseconds since the start.
    pub now: u64,
    eps: Vec<Ep>,
    conns: BTreeMap<u64, Conn>,
    reqs: BTreeMap<u64, (usize, u64, Req)>,
    global: VecDeque<u64>,
    in_global: BTreeMap<u64, bool>,
    next_id: u64,
    closed: bool,
    /// Endpoints in the order of their first acquire (the pool's own order,
    /// which breaks ties between equal eviction candidates).
    seen: Vec<usize>,
    /// Connections `check_alive` will report dead.
    dead: std::collections::BTreeSet<u64>,
    /// Every disposal: (connection id, reason).
    pub disposed: Vec<(u64, Reason)>,
}

/// The immediate result of an acquire.
#[derive(Debug, PartialEq, Eq)]
pub enum Acquired {
    Now(Res),
    Waits,
}

impl Model {
    pub fn new(s: &Settings, endpoints: usize) -> Self {
        Self {
            s: s.clone(),
            now: 0,
            eps: (0..endpoints).map(|_| Ep::default()).collect(),
            conns: BTreeMap::new(),
            reqs: BTreeMap::new(),
            global: VecDeque::new(),
            in_global: BTreeMap::new(),
            next_id: 0,
            closed: false,
            seen: Vec::new(),
            dead: Default::default(),
            disposed: Vec::new(),
        }
    }

    fn total(&self) -> usize {
        self.eps.iter().map(Ep::live).sum()
    }

    fn idle_total(&self) -> usize {
        self.eps.iter().map(Ep::idle).sum()
    }

    fn room(&self) -> bool {
        self.s.total_max_size.is_none_or(|m| self.total() < m)
    }

    fn lifetime_over(&self, id: u64) -> bool {
        let c = &self.conns[&id];
        self.s.max_lifetime_s.is_some_and(|l| self.now >= c.created + l * 1000)
    }

    fn due(&self, id: u64, extra: bool) -> Option<Reason> {
        let c = &self.conns[&id];
        if self.lifetime_over(id) {
            Some(Reason::Lifetime)
        } else if extra && self.s.idle_timeout_s.is_some_and(|t| self.now >= c.returned + t * 1000) {
            Some(Reason::Idle)
        } else {
            None
        }
    }

    fn deadline(&self, id: u64, extra: bool) -> Option<u64> {
        let c = &self.conns[&id];
        let life = self.s.max_lifetime_s.map(|l| c.created + l * 1000);
        let idle = if extra { self.s.idle_timeout_s.map(|t| c.returned + t * 1000) } else { None };
        match (life, idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn dispose(&mut self, id: u64, reason: Reason) {
        self.conns.remove(&id).expect("disposing a live connection");
        self.disposed.push((id, reason));
    }

    /// Per endpoint: (total, idle, in use, creating, waiting).
    pub fn status(&self, ep: usize) -> (usize, usize, usize, usize, usize) {
        let e = &self.eps[ep];
        (e.live(), e.idle(), e.in_use, e.creating, e.waiters.len())
    }

    pub fn pool_total(&self) -> usize {
        self.total()
    }

    pub fn uses(&self, id: u64) -> u64 {
        self.conns[&id].uses
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The connection was handed out: it must be live and not expired.
    fn hand_out(&mut self, id: u64) -> Res {
        assert!(!self.lifetime_over(id), "model bug: handing out an expired connection");
        self.conns.get_mut(&id).expect("live").uses += 1;
        Res::Conn(id)
    }

    fn create(&mut self, ep: usize) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.conns.insert(id, Conn { ep, created: self.now, returned: self.now, uses: 0 });
        id
    }

    /// A new acquire `req` at endpoint `ep`.
    pub fn acquire(&mut self, req: u64, ep: usize) -> Acquired {
        self.acquire_until(req, ep, self.now + ACQUIRE_TIMEOUT_MS)
    }

    /// Marks a connection dead: its next health check fails.
    pub fn kill(&mut self, id: u64) {
        self.dead.insert(id);
    }

    /// A reused connection is checked once per acquire (validation bypass
    /// zero); a dead one goes to `on_dead`, then `dispose`, and the acquire
    /// starts over (behind anyone now waiting) with the same deadline.
    fn check_failed(&mut self, id: u64) -> bool {
        if !self.dead.remove(&id) {
            return false;
        }
        let ep = self.conns[&id].ep;
        self.eps[ep].in_use -= 1;
        self.doom(id, Reason::Dead);
        true
    }

    fn acquire_until(&mut self, req: u64, ep: usize, deadline: u64) -> Acquired {
        if !self.seen.contains(&ep) {
            self.seen.push(ep);
        }
        if self.closed {
            return Acquired::Now(Res::Closed);
        }
        let limit = self.s.limit();
        if self.eps[ep].waiters.is_empty() {
            loop {
                let (id, extra) = if let Some(id) = self.eps[ep].core.pop_front() {
                    (id, false)
                } else if let Some(id) = self.eps[ep].extra.pop_back() {
                    (id, true)
                } else {
                    break;
                };
                if let Some(reason) = self.due(id, extra) {
                    self.dispose(id, reason);
                    continue;
                }
                self.eps[ep].in_use += 1;
                if self.check_failed(id) {
                    return self.acquire_until(req, ep, deadline);
                }
                return Acquired::Now(self.hand_out(id));
            }
            if self.eps[ep].live() < limit {
                if self.room() || self.evict_one() {
                    let id = self.create(ep);
                    self.eps[ep].in_use += 1;
                    return Acquired::Now(self.hand_out(id));
                }
                self.enqueue(req, ep, true, deadline);
                return Acquired::Waits;
            }
        }
        let global = self.eps[ep].live() < limit;
        self.enqueue(req, ep, global, deadline);
        Acquired::Waits
    }

    fn enqueue(&mut self, req: u64, ep: usize, global: bool, deadline: u64) {
        self.reqs.insert(req, (ep, deadline, Req::Waiting));
        self.eps[ep].waiters.push_back(req);
        self.in_global.insert(req, global);
        if global {
            self.global.push_back(req);
        }
    }

    fn unqueue(&mut self, req: u64) {
        let ep = self.reqs[&req].0;
        self.eps[ep].waiters.retain(|r| *r != req);
        self.global.retain(|r| *r != req);
    }

    fn pop_waiter(&mut self, ep: usize) -> Option<u64> {
        let req = self.eps[ep].waiters.pop_front()?;
        self.global.retain(|r| *r != req);
        Some(req)
    }

    fn grant(&mut self, req: u64, grant: Req) {
        let r = self.reqs.get_mut(&req).expect("known request");
        assert_eq!(r.2, Req::Waiting);
        r.2 = grant;
    }

    /// A guard drops its connection (`broken`: marked broken first).
    pub fn release(&mut self, id: u64, broken: bool) {
        let ep = self.conns[&id].ep;
        self.eps[ep].in_use -= 1;
        if broken {
            return self.doom(id, Reason::Broken);
        }
        self.put_back(id);
    }

    fn put_back(&mut self, id: u64) {
        let ep = self.conns[&id].ep;
        if self.closed {
            return self.doom(id, Reason::Closed);
        }
        if self.lifetime_over(id) {
            return self.doom(id, Reason::Lifetime);
        }
        self.conns.get_mut(&id).expect("live").returned = self.now;
        if let Some(w) = self.pop_waiter(ep) {
            self.eps[ep].in_use += 1;
            self.grant(w, Req::GrantedConn(id));
            return;
        }
        let e = &self.eps[ep];
        if e.live() >= self.s.max_size {
            return self.doom(id, Reason::Burst);
        }
        if self.s.max_idle.is_some_and(|m| e.idle() >= m) {
            return self.doom(id, Reason::Idle);
        }
        if e.core.len() < self.s.min_idle {
            self.eps[ep].core.push_back(id);
        } else {
            self.eps[ep].extra.push_back(id);
        }
        if !self.global.is_empty() {
            self.serve_global();
        }
        if self.s.background {
            return;
        }
        let mut budget = match self.s.dispose_batch_size {
            0 => {
                let n = self.eps[ep].live() + 1;
                (usize::BITS - 1 - n.leading_zeros()) as usize + 1
            }
            n => n,
        };
        self.collect_endpoint(ep, &mut budget);
    }

    fn collect_endpoint(&mut self, ep: usize, budget: &mut usize) {
        let mut freed = false;
        while *budget > 0 {
            let front = self.eps[ep].extra.front().copied();
            let (id, reason) = if let Some(r) = front.and_then(|id| self.due(id, true)) {
                (self.eps[ep].extra.pop_front().expect("front"), r)
            } else if let Some(pos) = self.eps[ep].core.iter().position(|id| self.lifetime_over(*id)) {
                (self.eps[ep].core.remove(pos).expect("pos"), Reason::Lifetime)
            } else {
                break;
            };
            *budget -= 1;
            self.dispose(id, reason);
            freed = true;
        }
        if freed {
            self.room_freed(ep);
        }
    }

    fn doom(&mut self, id: u64, reason: Reason) {
        let ep = self.conns[&id].ep;
        self.dispose(id, reason);
        self.room_freed(ep);
    }

    fn room_freed(&mut self, ep: usize) {
        if self.closed {
            return;
        }
        if !self.eps[ep].waiters.is_empty() && self.eps[ep].live() < self.s.limit() && self.room() {
            let w = self.pop_waiter(ep).expect("non-empty");
            self.eps[ep].creating += 1;
            self.grant(w, Req::GrantedCreate);
            return;
        }
        if !self.global.is_empty() {
            self.serve_global();
        }
    }

    fn serve_global(&mut self) {
        while let Some(&w) = self.global.front() {
            let j = self.reqs[&w].0;
            if self.eps[j].live() >= self.s.limit() {
                self.global.pop_front();
                self.in_global.insert(w, false);
                continue;
            }
            if !(self.room() || self.evict_one()) {
                return;
            }
            let first = self.pop_waiter(j).expect("queued at its endpoint");
            self.eps[j].creating += 1;
            self.grant(first, Req::GrantedCreate);
        }
    }

    /// Evicts the idle connection with the earliest deadline (no deadline
    /// last; ties: the one returned first, then endpoint order, core first).
    fn evict_one(&mut self) -> bool {
        if self.idle_total() == 0 {
            return false;
        }
        type Rank = (bool, Option<u64>, u64);
        let mut best: Option<(Rank, usize, bool, usize)> = None;
        for &i in &self.seen {
            let e = &self.eps[i];
            for (extra, set) in [(false, &e.core), (true, &e.extra)] {
                for (pos, id) in set.iter().enumerate() {
                    let d = self.deadline(*id, extra);
                    let key = (d.is_none(), d, self.conns[id].returned);
                    if best.as_ref().is_none_or(|(b, ..)| key < *b) {
                        best = Some((key, i, extra, pos));
                    }
                }
            }
        }
        let (_, i, extra, pos) = best.expect("something idle");
        let id = if extra { self.eps[i].extra.remove(pos) } else { self.eps[i].core.remove(pos) };
        self.dispose(id.expect("pos"), Reason::Evicted);
        true
    }

    /// `Pooled::take`: the connection leaves the pool undisposed.
    pub fn take(&mut self, id: u64) {
        let ep = self.conns[&id].ep;
        self.eps[ep].in_use -= 1;
        self.conns.remove(&id);
        self.room_freed(ep);
    }

    /// A waiting acquire is dropped.
    pub fn cancel(&mut self, req: u64) {
        let (ep, _, state) = self.reqs.remove(&req).expect("known request");
        self.reqs.insert(req, (ep, 0, state));
        match state {
            Req::Waiting => self.unqueue(req),
            Req::GrantedClosed => {}
            Req::GrantedConn(id) => {
                self.eps[ep].in_use -= 1;
                self.put_back(id);
            }
            Req::GrantedCreate => {
                self.eps[ep].creating -= 1;
                self.room_freed(ep);
            }
        }
        self.reqs.remove(&req);
    }

    /// Time passes; a background collector disposes what fell due.
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        if self.s.background && !self.closed {
            for ep in self.seen.clone() {
                let mut unlimited = usize::MAX;
                self.collect_endpoint(ep, &mut unlimited);
            }
        }
    }

    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        self.global.clear();
        for ep in 0..self.eps.len() {
            let waiters: Vec<u64> = self.eps[ep].waiters.drain(..).collect();
            for w in waiters {
                self.grant(w, Req::GrantedClosed);
            }
            let e = &mut self.eps[ep];
            let idle: Vec<u64> = e.core.drain(..).chain(e.extra.drain(..)).collect();
            for id in idle {
                self.dispose(id, Reason::Closed);
            }
        }
    }

    /// Whether the pending acquire `req` was granted something.
    pub fn is_granted(&self, req: u64) -> bool {
        self.reqs[&req].2 != Req::Waiting
    }

    /// Polls the pending acquire `req` once, the way its future would be:
    /// `Some` when it finished.
    pub fn poll(&mut self, req: u64) -> Option<Res> {
        let (ep, deadline, state) = self.reqs[&req];
        let res = match state {
            Req::Waiting if self.now >= deadline => {
                self.unqueue(req);
                Res::Timeout
            }
            Req::Waiting => return None,
            Req::GrantedClosed => Res::Closed,
            Req::GrantedConn(id) if self.closed => {
                self.eps[ep].in_use -= 1;
                self.put_back(id);
                Res::Closed
            }
            Req::GrantedConn(id) if self.check_failed(id) => {
                self.reqs.remove(&req);
                return match self.acquire_until(req, ep, deadline) {
                    Acquired::Now(res) => Some(res),
                    Acquired::Waits => None,
                };
            }
            Req::GrantedConn(id) => self.hand_out(id),
            Req::GrantedCreate => {
                self.eps[ep].creating -= 1;
                let id = self.create(ep);
                if self.closed {
                    self.dispose(id, Reason::Closed);
                    Res::Closed
                } else {
                    self.eps[ep].in_use += 1;
                    self.hand_out(id)
                }
            }
        };
        self.reqs.remove(&req);
        Some(res)
    }

    /// How many disposals of each reason, indexed like `DisposeReason::ALL`.
    pub fn disposed_by_reason(&self) -> [u64; 7] {
        let mut n = [0; 7];
        for (_, r) in &self.disposed {
            let i = Reason::ALL.iter().position(|x| x == r).expect("known reason");
            n[i] += 1;
        }
        n
    }
}
