//! Where the hash key comes from: never from the API key or a constant. An endpoint needs
//! an explicit key (configuration or `MODELWATCH_HASH_KEY`), a data folder gets a random
//! key stored once in it, custom sinks alone a random key of the process.
//!
//! Every test here takes `ENV`: they read (and some set) the process environment.

mod common;

use common::{temp_dir, MemorySink};
use modelwatch::{Agent, Config, ErrorKind, Value, WindowSummary, HASH_KEY_ENV, HASH_KEY_FILE};
use std::sync::Mutex;
use std::time::Duration;

static ENV: Mutex<()> = Mutex::new(());
const WAIT: Duration = Duration::from_secs(30);

fn env_lock() -> std::sync::MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(|e| e.into_inner())
}

/// The fingerprint of the key of an agent: one logged value, flushed into a memory sink.
fn fingerprint_of(config: Config) -> u32 {
    let sink = MemorySink::default();
    let agent = Agent::start(config.sink(sink.clone())).unwrap();
    agent
        .session("fp")
        .log_prediction([("s", Value::from("NL"))], 0.5);
    agent.flush(WAIT).unwrap();
    sink.summaries()[0].key_fingerprint()
}

#[test]
fn an_endpoint_without_a_hash_key_is_refused_and_told_how_to_set_one() {
    let _env = env_lock();
    std::env::remove_var(HASH_KEY_ENV);
    let dir = temp_dir("key-endpoint").join("never-created");
    let config = || {
        Config::new("api-key")
            .endpoint("http://127.0.0.1:9")
            .data_dir(&dir)
    };
    let e = Agent::start(config()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoHashKey);
    let message = e.to_string();
    for needed in ["MODELWATCH_HASH_KEY", "Config::hash_key", "API key"] {
        assert!(
            message.contains(needed),
            "{needed:?} missing from: {message}"
        );
    }
    assert!(!dir.exists(), "nothing is created before the key is known");
    let e = modelwatch::configure(config()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoHashKey);
    // With a key it starts.
    Agent::start(config().hash_key([3; 16])).unwrap();
}

#[test]
fn the_environment_supplies_the_key_as_32_hex_characters() {
    let _env = env_lock();
    let hex = "00112233445566778899aabbccddeeff";
    std::env::set_var(HASH_KEY_ENV, format!("{hex}\n"));
    let from_env = fingerprint_of(Config::new("api-key").no_data_dir());
    let bytes = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    let explicit = fingerprint_of(Config::new("other-api-key").no_data_dir().hash_key(bytes));
    assert_eq!(from_env, explicit);
    // The environment serves an endpoint too; Config::hash_key wins over it.
    let dir = temp_dir("key-env-folder");
    let agent = Agent::start(
        Config::new("api-key")
            .endpoint("http://127.0.0.1:9")
            .no_data_dir(),
    );
    assert!(agent.is_ok(), "{:?}", agent.err());
    drop(agent);
    let wins = fingerprint_of(Config::new("api-key").data_dir(&dir).hash_key([9; 16]));
    assert_ne!(wins, from_env);
    // The environment wins over the folder: no key file is made.
    assert_eq!(fingerprint_of(Config::new("k").data_dir(&dir)), from_env);
    assert!(!dir.join(HASH_KEY_FILE).exists());

    for bad in [
        "my passphrase",
        &hex[..31],
        &format!("{hex}00"),
        &"zz".repeat(16),
    ] {
        std::env::set_var(HASH_KEY_ENV, bad);
        let e =
            Agent::start(Config::new("k").no_data_dir().sink(MemorySink::default())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{bad:?}");
        assert!(e.to_string().contains("32 hex characters"), "{e}");
        assert!(!e.to_string().contains(bad), "the secret is echoed: {e}");
    }
    std::env::remove_var(HASH_KEY_ENV);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_data_folder_gets_one_random_key_that_racing_and_later_agents_share() {
    let _env = env_lock();
    std::env::remove_var(HASH_KEY_ENV);
    let dir = temp_dir("key-folder");
    // Eight agents start on the fresh folder at once: one key file wins, all use it.
    let barrier = std::sync::Barrier::new(8);
    let racing: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    fingerprint_of(Config::new("api-key").data_dir(&dir))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(racing.iter().all(|&f| f == racing[0]), "{racing:x?}");
    let later = fingerprint_of(Config::new("another-api-key").data_dir(&dir));
    assert_eq!(later, racing[0], "a later start reuses the folder's key");

    let key_file = dir.join(HASH_KEY_FILE);
    let text = std::fs::read_to_string(&key_file).unwrap();
    assert_eq!(text.len(), 33, "32 hex characters and a newline");
    assert!(text.trim_end().bytes().all(|b| b.is_ascii_hexdigit()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Nothing but the key and the summaries: no temporary file is left behind.
    let leftovers: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != HASH_KEY_FILE && !n.ends_with(".msgpack"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Another folder, same API key: another key. It derives from neither.
    let other = temp_dir("key-folder-other");
    assert_ne!(
        fingerprint_of(Config::new("api-key").data_dir(&other)),
        racing[0]
    );

    // A damaged key file is an error that says how to recover, not a silent new key.
    std::fs::write(&key_file, "not a key\n").unwrap();
    let e = Agent::start(Config::new("k").data_dir(&dir)).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.to_string().contains("delete it"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

/// Run as a child process: prints the fingerprint of a sinks-only agent's key.
#[test]
#[ignore = "run as a child process by custom_sinks_alone_use_a_random_key_of_the_process"]
fn print_process_key_fingerprint() {
    std::env::remove_var(HASH_KEY_ENV);
    println!(
        "fingerprint={}",
        fingerprint_of(Config::new("api-key").no_data_dir())
    );
}

#[test]
fn custom_sinks_alone_use_a_random_key_of_the_process() {
    let in_this_process = {
        let _env = env_lock();
        std::env::remove_var(HASH_KEY_ENV);
        let a = fingerprint_of(Config::new("api-key").no_data_dir());
        let b = fingerprint_of(Config::new("other-api-key").no_data_dir());
        assert_eq!(a, b, "agents of one process share its key and merge");
        a
    };
    let child = |_: usize| -> u32 {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "print_process_key_fingerprint",
                "--nocapture",
            ])
            .env_remove(HASH_KEY_ENV)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        stdout
            .lines()
            .find_map(|l| l.strip_prefix("fingerprint="))
            .unwrap_or_else(|| panic!("no fingerprint in {stdout}"))
            .parse()
            .unwrap()
    };
    let (first, second) = (child(0), child(1));
    // Same API key, same code: a derived or constant key would repeat.
    assert_ne!(first, second);
    assert_ne!(first, in_this_process);
    assert_ne!(second, in_this_process);
}

#[test]
fn summaries_of_agents_with_one_key_merge() {
    let _env = env_lock();
    std::env::remove_var(HASH_KEY_ENV);
    let dir = temp_dir("key-merge");
    // One value per agent: k-anonymity off, the test is about merging across agents.
    let start = |api_key: &str| {
        Agent::start(Config::new(api_key).data_dir(&dir).min_values_per_window(1)).unwrap()
    };
    for (api_key, country) in [("a", "NL"), ("b", "DE")] {
        let agent = start(api_key);
        agent
            .session("merge")
            .log_prediction([("country", Value::from(country))], 0.5);
        agent.flush(WAIT).unwrap();
    }
    let mut merged: Option<WindowSummary> = None;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.path().extension().is_some_and(|x| x == "msgpack") {
            let s = WindowSummary::decode(&std::fs::read(entry.path()).unwrap()).unwrap();
            match &mut merged {
                Some(m) => m.merge(&s).unwrap(),
                None => merged = Some(s),
            }
        }
    }
    assert_eq!(merged.unwrap().feature("country").unwrap().distinct(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}
