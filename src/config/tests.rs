//! Config parsing and validation: defaults, and errors that name the key.

use super::*;

#[test]
fn empty_file_is_defaults() {
    let c = Config::from_toml("").unwrap();
    assert_eq!(c.port, 1883);
    assert_eq!(c.limits.max_inflight, 256);
}

#[test]
fn unknown_key_is_named() {
    let e = Config::from_toml("[limits]\nmax_conections = 5\n").unwrap_err();
    assert!(e.to_string().contains("max_conections"), "{e}");
}

#[test]
fn out_of_range_is_named() {
    let e = Config::from_toml("[limits]\nmax_inflight = 0\n").unwrap_err();
    assert!(e.to_string().contains("limits.max_inflight"), "{e}");
    let e = Config::from_toml("batch_window_us = 200000\n").unwrap_err();
    assert!(e.to_string().contains("`batch_window_us`"), "{e}");
    for bad in [0, 512, 3000, 131_072] {
        let e = Config::from_toml(&format!("receive_pool_kib = {bad}\n")).unwrap_err();
        assert!(
            e.to_string().contains("`receive_pool_kib`")
                && e.to_string().contains("power of two from 1024 to 65536"),
            "{e}"
        );
    }
    let c = Config::from_toml("receive_pool_kib = 1024\n").expect("a valid pool size");
    assert_eq!(c.receive_pool_kib, Some(1024));
    assert_eq!(
        Config::default().receive_pool_kib,
        None,
        "sized by the kernel's features"
    );
    let e = Config::from_toml("[mesh]\nchannel_messages = 0\n").unwrap_err();
    assert!(e.to_string().contains("mesh.channel_messages"), "{e}");
    let e = Config::from_toml("shards = 65\n").unwrap_err();
    assert!(e.to_string().contains("`shards`"), "{e}");
}

#[test]
fn password_file_problems_are_named() {
    let e = Config::from_toml("[auth]\nallow_anonymous = false\n").unwrap_err();
    assert!(e.to_string().contains("auth.password_file"), "{e}");
    let dir = std::env::temp_dir().join(format!("shardmq-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("passwd"), "alice:secret\n").unwrap();
    std::fs::write(dir.join("a.toml"), "[auth]\npassword_file = \"passwd\"\n").unwrap();
    // Relative to the config file's folder, and the bad line is named.
    let mut c = Config::from_file(&dir.join("a.toml")).unwrap();
    assert_eq!(c.auth.password_file.as_deref(), Some(&*dir.join("passwd")));
    let e = c.load_auth_files().unwrap_err().to_string();
    assert!(e.contains("passwd") && e.contains("line 1"), "{e}");
    std::fs::remove_file(dir.join("passwd")).unwrap();
    let e = c.load_auth_files().unwrap_err().to_string();
    assert!(
        e.contains("auth.password_file") && e.contains("No such file"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn wrong_type_is_named() {
    let e = Config::from_toml("port = \"x\"\n").unwrap_err();
    assert!(e.to_string().contains("port"), "{e}");
}
