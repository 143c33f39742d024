import Dispatch

/// Tells when the system's time zone may have changed: an inotify watch on the directory of
/// the localtime link, read by a `DispatchSourceRead` on the engine's queue.
///
/// The kernel reports ECANCELED on a realtime timerfd when the clock is set, but nothing when
/// only the zone changes, so a loop asleep until "09:00 local" computed in the old zone would
/// wake at the wrong local time. The directory is watched rather than the link itself because
/// the link is replaced (a new inode renamed over it, or unlinked and re-created), and a watch
/// on the old inode would never see the new one.
///
/// A value type held under the engine's lock: only the Dispatch source has identity.
struct ZoneWatcher {
    /// The link watched, e.g. `/etc/localtime`.
    let localtimePath: String
    private let source: any DispatchSourceRead

    /// Starts watching the directory of `localtimePath` for changes of its last component and
    /// calls `onChange` on `queue` after each (several events read at once call it once).
    ///
    /// Returns nil when inotify or the directory is not available; the zone is then still
    /// re-read at each computation, only a sleeper does not wake early for a change of it.
    init?(localtimePath: String, queue: DispatchQueue, onChange: @escaping @Sendable () -> Void) {
        let (directory, name) = Self.split(localtimePath)
        guard !name.isEmpty, let descriptor = TimerCore.makeZoneWatch(directory: directory) else { return nil }
        self.localtimePath = localtimePath
        let source = DispatchSource.makeReadSource(fileDescriptor: descriptor, queue: queue)
        // The handler holds its source until `cancel()`, after which Dispatch releases the
        // handlers and with them the cycle.
        source.setEventHandler { [source] in
            switch TimerCore.drainZoneWatch(descriptor, name: name) {
            case .unchanged:
                break
            case .changed:
                onChange()
            case .failed:
                // An fd that cannot be read stays readable: stop watching rather than spin,
                // after one last re-evaluation in case the failure hid a change.
                source.cancel()
                onChange()
            }
        }
        source.setCancelHandler { TimerCore.close(descriptor) }
        source.activate()
        self.source = source
    }

    /// Stops watching; the fd is closed once Dispatch no longer uses it.
    func cancel() {
        source.cancel()
    }

    /// `/etc/localtime` → (`/etc`, `localtime`); `localtime` → (`.`, `localtime`).
    static func split(_ path: String) -> (directory: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let directory = String(path[..<slash])
        return (directory.isEmpty ? "/" : directory, String(path[path.index(after: slash)...]))
    }
}
