//! Untrusted bytes into `WindowSummary::decode`: an error or a summary, never a panic, a
//! hang or an allocation from an unchecked length. A decoded summary must re-encode, decode
//! again, merge with itself and render.
#![no_main]

use libfuzzer_sys::fuzz_target;
use modelwatch::WindowSummary;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = WindowSummary::decode(data) {
        let again = WindowSummary::decode(&s.encode()).expect("a decoded summary re-decodes");
        let mut merged = again.clone();
        merged.merge(&again).expect("same deployment");
        let _ = merged.to_string();
        for (_, f) in merged.features() {
            let _ = (f.quantile(0.5), f.distinct(), f.mean());
        }
    }
});
