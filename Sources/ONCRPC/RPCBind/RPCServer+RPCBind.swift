// Registration of a server's programs with the host's rpcbind, so `rpcinfo -p` lists them
// and clients find their ports by program number. Registrations are removed again when
// the server shuts down.

import NIOCore

extension RPCServer {
    /// Registers every served program version on every endpoint the server listens on
    /// (call after `listenTCP`/`listenUDP`), with rpcbind version 4 SET and the portmapper's
    /// version 2 SET as a fallback for daemons that speak only that. Stale registrations of the
    /// same program versions (a previous run that crashed) are replaced. Installs a shutdown
    /// hook that unregisters them.
    ///
    /// - Throws: `RPCBindError.notRunning` when no rpcbind answers (callers may carry on
    ///   without registration), `RPCBindError.registrationRefused` when it says no.
    @discardableResult
    public func registerWithRPCBind(_ rpcbind: RPCBindClient = .local()) async throws -> [RPCBindMapping] {
        var mappings: [RPCBindMapping] = []
        for endpoint in endpoints {
            guard let universal = UniversalAddress.format(endpoint.address) else { continue }
            let netid = UniversalAddress.netid(for: endpoint.transport, address: endpoint.address)
            for program in programs {
                mappings.append(RPCBindMapping(
                    program: program.number, version: program.version, netid: netid, address: universal, owner: ""
                ))
            }
        }
        var useVersion2 = false
        var done: [RPCBindMapping] = []
        for mapping in mappings {
            if !useVersion2 {
                do {
                    // Replace a leftover registration from an earlier run, as libtirpc's
                    // svc_reg does (an existing mapping makes SET fail).
                    _ = try await rpcbind.unset(program: mapping.program, version: mapping.version, netid: mapping.netid)
                    guard try await rpcbind.set(mapping) else { throw RPCBindError.registrationRefused(mapping) }
                    done.append(mapping)
                    continue
                } catch RPCClientError.programMismatch {
                    useVersion2 = true
                }
            }
            guard let address = UniversalAddress.parse(mapping.address), let port = address.port else { continue }
            let pmap = PortMapping(program: mapping.program, version: mapping.version,
                                   protocol: mapping.netid.hasPrefix("udp") ? .udp : .tcp, port: UInt32(port))
            _ = try await rpcbind.portmapUnset(program: mapping.program, version: mapping.version)
            guard try await rpcbind.portmapSet(pmap) else { throw RPCBindError.registrationRefused(mapping) }
            done.append(mapping)
        }
        let registered = done
        let viaVersion2 = useVersion2
        onShutdown {
            for mapping in registered {
                if viaVersion2 {
                    _ = try? await rpcbind.portmapUnset(program: mapping.program, version: mapping.version)
                } else {
                    _ = try? await rpcbind.unset(program: mapping.program, version: mapping.version, netid: mapping.netid)
                }
            }
            await rpcbind.close()
        }
        return registered
    }
}

extension RPCClient {
    /// A client for a program version on `host`, its port found through the host's rpcbind.
    ///
    /// ```swift
    /// let client = try await RPCClient.discover(host: "127.0.0.1", program: 100003, version: 3)
    /// ```
    public static func discover(
        host: String,
        program: UInt32,
        version: UInt32,
        transport: RPCTransport = .tcp,
        authenticator: any RPCClientAuthenticator = AuthNoneClient(),
        configuration: RPCClient.Configuration = .init()
    ) async throws -> RPCClient {
        let rpcbind = try RPCBindClient.remote(host: host, transport: .tcp)
        let address: SocketAddress
        do {
            address = try await rpcbind.lookup(program: program, version: version, transport: transport, host: host)
        } catch {
            await rpcbind.close()
            throw error
        }
        await rpcbind.close()
        return RPCClient(transport: transport, address: address, program: program, version: version,
                         authenticator: authenticator, configuration: configuration)
    }
}
