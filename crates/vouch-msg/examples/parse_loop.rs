//! Callgrind harness: `valgrind --tool=callgrind target/release/examples/parse_loop 20000`
//! counts instructions for the benchmark workload, stable under machine noise.

#[path = "../benches/common.rs"]
mod common;

fn main() {
    let input = bytes::Bytes::from_static(common::INVITE);
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    let mut acc = 0;
    for _ in 0..n {
        acc += common::vouch_typed(std::hint::black_box(&input));
    }
    println!("{acc}");
}
