import Foundation
import Loops
import NIOSSL
import PostgresNIO

/// `postgres://user:password@host:port/database?sslmode=…` as a client configuration.
enum PostgresURL {
    static func configuration(from text: String) throws -> PostgresClient.Configuration {
        guard let components = URLComponents(string: text),
            let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme)
        else {
            throw LoopError(.invalidOption, "'\(redacted(text))' is not a PostgreSQL URL (postgres://user:password@host:port/database)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw LoopError(.invalidOption, "the PostgreSQL URL '\(redacted(text))' names no host")
        }
        guard let user = components.user, !user.isEmpty else {
            throw LoopError(.invalidOption, "the PostgreSQL URL '\(redacted(text))' names no user")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "prefer"
        let tls: PostgresClient.Configuration.TLS
        switch mode {
        case "disable": tls = .disable
        case "prefer", "allow": tls = .prefer(.makeClientConfiguration())
        case "require", "verify-ca", "verify-full": tls = .require(.makeClientConfiguration())
        default:
            throw LoopError(.invalidOption, "the PostgreSQL URL '\(redacted(text))' has sslmode '\(mode)' (use disable, prefer or require)")
        }
        return PostgresClient.Configuration(
            host: host,
            port: components.port ?? 5432,
            username: user.removingPercentEncoding ?? user,
            password: components.password?.removingPercentEncoding,
            database: database.isEmpty ? nil : database,
            tls: tls
        )
    }

    /// The URL without its password, for messages.
    static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = "***"
        return components.string ?? text
    }
}
