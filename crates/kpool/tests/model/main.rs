//! Property tests: random sequences of acquire / release / take / mark
//! broken / kill (the next health check fails) / timeout / cancel / time
//! advance / close over several endpoints,
//! run against the real pools and checked after every step against a small
//! reference model of SPEC section 3 ([`model::Model`]).
//!
//! After every step the test compares, per endpoint and in total: what each
//! pending acquire returned (which connection, or which error) or that it is
//! still waiting, the status counts (total, idle, in use, creating, waiting),
//! the connections disposed (ids and reasons), and each guard's use count;
//! and it calls `assert_invariants()`.
//!
//! The async pool runs on a current-thread runtime with paused time; acquire
//! futures are polled by hand, in arrival order, so every interleaving is
//! reproducible. The blocking pool is driven from helper threads, one per
//! waiting caller, started one at a time (see `blocking.rs`).

mod asynch;
mod blocking;
mod model;

use proptest::prelude::*;

use model::{Op, Settings};

/// Endpoints the sequences use.
pub const EPS: [u8; 3] = [0, 1, 2];

fn settings() -> impl Strategy<Value = Settings> {
    (1usize..=3, 0usize..=3, prop::option::of(0usize..=2), prop::option::of(0usize..=4), any::<bool>())
        .prop_flat_map(|(max, min, burst_extra, total_extra, timers)| {
            let min = min.min(max);
            let timers = if timers {
                (prop::option::of(1u64..=8), prop::option::of(8u64..=30)).boxed()
            } else {
                Just((None, None)).boxed()
            };
            (
                Just((max, min, burst_extra, total_extra)),
                prop::option::of(min.max(1)..=3),
                timers,
                0usize..=2,
                any::<bool>(),
            )
        })
        .prop_map(|((max, min, burst_extra, total_extra), max_idle, (idle, life), batch, background)| Settings {
            max_size: max,
            min_idle: min,
            max_idle: max_idle.filter(|m| *m >= min),
            burst_limit: burst_extra.map(|b| max + b),
            total_max_size: total_extra.map(|t| max + t),
            idle_timeout_s: idle,
            max_lifetime_s: life,
            dispose_batch_size: batch,
            background,
        })
}

fn op(with_time: bool) -> impl Strategy<Value = Op> {
    let ep = 0..EPS.len() as u8;
    let advance =
        if with_time { prop_oneof![Just(1u64), Just(3), Just(7), Just(11), Just(31)].boxed() } else { Just(0).boxed() };
    prop_oneof![
        6 => ep.prop_map(Op::Acquire),
        4 => any::<prop::sample::Index>().prop_map(Op::Release),
        1 => any::<prop::sample::Index>().prop_map(Op::Broken),
        1 => any::<prop::sample::Index>().prop_map(Op::Take),
        1 => any::<prop::sample::Index>().prop_map(Op::Cancel),
        1 => any::<prop::sample::Index>().prop_map(Op::Kill),
        2 => advance.prop_map(Op::Advance),
        1 => Just(Op::Close),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, max_shrink_iters: 4000, ..ProptestConfig::default() })]

    #[test]
    fn async_pool_follows_the_model(s in settings(), ops in prop::collection::vec(op(true), 1..80)) {
        asynch::run(&s, &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 1000, ..ProptestConfig::default() })]

    #[test]
    fn blocking_pool_follows_the_model(
        s in settings().prop_map(|mut s| { s.idle_timeout_s = None; s.max_lifetime_s = None; s }),
        ops in prop::collection::vec(op(false), 1..40),
    ) {
        blocking::run(&s, &ops);
    }
}
