//! TCPServer when the process runs out of file descriptors (EMFILE): it
//! must pause accepting (no busy loop: the listener stays readable, and an
//! edge-triggered loop would otherwise either spin or never wake again),
//! and accept the waiting connections once descriptors are free.
//!
//! Its own test binary with a single test, because it lowers the
//! process-wide RLIMIT_NOFILE (with the `prlimit` tool from util-linux; the
//! test is skipped if that tool is missing).
mod common;

use std::cell::RefCell;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;
use std::time::Duration;

use common::*;
use squall::ioloop::IOLoop;
use squall::iostream::IOStream;
use squall::tcpserver::TCPServer;

/// CPU time (user + system, in clock ticks) of the calling thread, read
/// through a file opened in advance (no descriptor is free later).
fn thread_cpu_ticks(stat: &mut File) -> u64 {
    let mut text = String::new();
    stat.seek(SeekFrom::Start(0)).expect("seek");
    stat.read_to_string(&mut text).expect("read stat");
    let after_comm = &text[text.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after the comm field they are 11 and 12.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("fds").count()
}

fn set_nofile(soft: u64) -> bool {
    std::process::Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!("--nofile={soft}:"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[test]
fn out_of_descriptors_pauses_accepting_without_spinning_then_recovers() {
    const CLIENTS: usize = 20;
    let report = slot();
    let mut original_soft = 0u64;
    if let Ok(limits) = std::fs::read_to_string("/proc/self/limits") {
        for line in limits.lines().filter(|l| l.starts_with("Max open files")) {
            original_soft = line
                .split_whitespace()
                .nth(3)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
        }
    }
    if original_soft == 0 || !set_nofile(original_soft) {
        eprintln!("skipped: cannot read or set RLIMIT_NOFILE with prlimit");
        return;
    }
    run_loop(|ioloop| {
        let streams: Rc<RefCell<Vec<IOStream>>> = Rc::new(RefCell::new(Vec::new()));
        let held = streams.clone();
        let server = TCPServer::new(move |stream, _| held.borrow_mut().push(stream));
        let addr = server
            .listen("127.0.0.1:0".parse().expect("addr"))
            .expect("listen");
        // The handshakes complete in the kernel's backlog; the server has
        // not accepted anything yet (the loop is not running).
        let clients: Vec<std::net::TcpStream> = (0..CLIENTS).map(|_| client(addr)).collect();
        let mut stat = File::open("/proc/thread-self/stat").expect("stat");
        // Ballast: descriptors we give back later to let accepts succeed.
        let ballast: Vec<File> = (0..CLIENTS + 5)
            .map(|_| File::open("/dev/null").expect("ballast"))
            .collect();
        // No new descriptor from here on (read_dir counts its own).
        assert!(set_nofile(open_fds() as u64 - 1), "prlimit failed");
        let timers = ioloop.timer_count();
        let ballast = Rc::new(RefCell::new(Some(ballast)));
        let (r, s) = (report.clone(), server.clone());
        // Paused = the retry timer is armed.
        wait_until(
            move || IOLoop::current().timer_count() > timers,
            move || {
                let before = thread_cpu_ticks(&mut stat);
                let accepted_while_out = s.accepted();
                IOLoop::current().call_later(Duration::from_millis(300), move || {
                    let cpu = thread_cpu_ticks(&mut stat) - before;
                    // Free descriptors: the retry timer must pick the
                    // waiting connections up without any new event.
                    drop(ballast.borrow_mut().take());
                    wait_until(
                        move || s.accepted() == CLIENTS as u64,
                        move || {
                            *r.borrow_mut() = Some((accepted_while_out, cpu, clients.len()));
                            stop();
                        },
                    );
                });
            },
        );
        let _ = streams;
    });
    set_nofile(original_soft);
    let (accepted_while_out, cpu_ticks, clients) = report.take().expect("recorded");
    assert_eq!(clients, CLIENTS);
    // At most the odd descriptor freed after counting; never all of them.
    assert!(
        accepted_while_out < CLIENTS as u64 / 2,
        "{accepted_while_out}"
    );
    // A busy loop would burn ~30 ticks (10 ms each) in 300 ms.
    assert!(
        cpu_ticks < 10,
        "the loop spun while out of descriptors: {cpu_ticks} ticks"
    );
}
