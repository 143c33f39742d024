#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The three standard file descriptors of `loops` and its own writes to standard error.
enum StandardStreams {
    /// Opens `/dev/null` on each of descriptors 0, 1 and 2 that is closed (`loops run >&-`).
    ///
    /// A closed standard descriptor is the lowest free number, so the next `epoll_create`,
    /// `eventfd` or socket would take it: `loops`' own messages would then be written into an
    /// event-poll descriptor, and a run would inherit a closed stdout. `/dev/null` keeps the
    /// numbers taken, as systemd and most daemons do. Call it first thing, before Dispatch or the
    /// loop engine open anything.
    static func reopenClosedOnes() {
        for descriptor: Int32 in 0...2 where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
            // open() returns the lowest free number, which is `descriptor`: the lower ones are open.
            let opened = open("/dev/null", descriptor == 0 ? O_RDONLY : O_WRONLY)
            if opened >= 0, opened != descriptor {
                _ = dup2(opened, descriptor)
                _ = close(opened)
            }
        }
    }

    /// Writes `text` to standard error with `write(2)`, ignoring failures.
    ///
    /// Foundation's `FileHandle.write(_:)` traps on an error, and a message about a failure must
    /// never become a crash: a broken or full stderr (EPIPE with SIGPIPE ignored, EBADF) loses
    /// the message, nothing more.
    static func writeError(_ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
            if written > 0 {
                bytes = bytes.dropFirst(written)
            } else if written == -1, errno == EINTR {
                continue
            } else {
                return
            }
        }
    }
}
