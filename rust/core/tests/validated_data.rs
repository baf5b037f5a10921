//! `MarketData::new_validated` (rows proven by the caller's validation) wraps the same data as
//! `MarketData::new`: the same timestamp count and the same run; it still refuses a bad schema.

mod common;

use common::*;
use ml4t_backtest_core::MarketData;

#[test]
fn a_validated_frame_counts_the_same_timestamps_and_gives_the_same_run() {
    let rows: Vec<Row> = (0..40)
        .flat_map(|t| {
            (0..3u32)
                .filter(move |a| (t + *a as i64) % 4 != 0)
                .map(move |a| flat(t * 60, a, 100.0 + (t as f64 * 0.7 + a as f64).sin()))
        })
        .collect();
    let checked = market(&rows, 3, &[]);
    let validated = MarketData::new_validated(frame(&rows, &[]), 3).expect("valid schema");
    assert_eq!(checked.n_timestamps(), validated.n_timestamps());
    assert_eq!(checked.len(), validated.len());
    let script = vec![
        (2, Cmd::Submit(0, 5.0)),
        (9, Cmd::Submit(1, -3.0)),
        (20, Cmd::Close(0)),
    ];
    let run = |data: &MarketData| {
        let mut strategy = Scripted::new(script.clone());
        let mut engine = ml4t_backtest_core::Engine::new(config(), 3).expect("config");
        engine.process_chunk(data, &mut strategy).expect("runs");
        engine.finish(&mut strategy).expect("finishes")
    };
    let (a, b) = (run(&checked), run(&validated));
    assert_eq!(f64s(&a.equity, "cash"), f64s(&b.equity, "cash"));
    assert_eq!(f64s(&a.fills, "price"), f64s(&b.fills, "price"));
    let empty = MarketData::new_validated(frame(&[], &[]), 3).expect("valid schema");
    assert_eq!(empty.n_timestamps(), 0);
    let no_close = frame(&rows, &[])
        .project(&[0, 1, 2, 3, 4, 6])
        .expect("projection");
    assert!(MarketData::new_validated(no_close, 3).is_err());
}
