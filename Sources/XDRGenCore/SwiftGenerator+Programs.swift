// Emits, for each program version, a typed async client wrapping RPCClient and a server
// protocol whose conformer becomes an RPCProgram with one call. Server-side decoding must
// consume the arguments exactly; any XDRError (a bound exceeded, a bad enum, truncation)
// is answered with GARBAGE_ARGS by the ONCRPC dispatcher.

extension SwiftGenerator {
    struct ProcedureInfo {
        var procedure: Procedure
        var number: Int64
        var method: String
        var arguments: [Codec]
        var result: Codec
        var isVoidResult: Bool
    }

    /// Method names: `ECHOPROC_ECHO` → `echo` (the text after `PROC_`, rpcgen's naming
    /// habit), falling back to the whole name when that would collide.
    func methodNames(_ version: ProgramVersion) -> [String] {
        let reserved: Set<String> = ["rpcClient", "close", "rpcProgram", "init", "program", "version"]
        let short = version.procedures.map { procedure -> String in
            if let range = procedure.name.range(of: "PROC_"), range.upperBound != procedure.name.endIndex {
                return Naming.lowerCamel(String(procedure.name[range.upperBound...]))
            }
            return Naming.lowerCamel(procedure.name)
        }
        let counts = Dictionary(short.map { ($0, 1) }, uniquingKeysWith: +)
        var scope = NameScope(reserved: reserved)
        return zip(version.procedures, short).map { procedure, name in
            let candidate = counts[name] == 1 && !reserved.contains(name) ? name : Naming.lowerCamel(procedure.name)
            return Naming.escaped(scope.claim(candidate))
        }
    }

    mutating func generateProgram(_ program: Program) throws(XDRGenError) {
        let programNumber = try symbols.resolve(program.number)
        for version in program.versions {
            let versionNumber = try symbols.resolve(version.number)
            let names = methodNames(version)
            var procedures: [ProcedureInfo] = []
            for (procedure, method) in zip(version.procedures, names) {
                let result = try codec(for: procedure.result, at: procedure.location)
                var arguments: [Codec] = []
                for argument in procedure.arguments {
                    arguments.append(try codec(for: argument, at: procedure.location))
                }
                let isVoid: Bool
                if case .void = procedure.result { isVoid = true } else { isVoid = false }
                procedures.append(ProcedureInfo(
                    procedure: procedure, number: try symbols.resolve(procedure.number), method: method,
                    arguments: arguments, result: result, isVoidResult: isVoid
                ))
            }
            let base = Naming.upperCamel(version.name)
            let clientName = symbols.typeScope.claim(base + "Client")
            let serviceName = symbols.typeScope.claim(base + "Service")
            let programHex = "0x" + String(UInt32(truncatingIfNeeded: programNumber), radix: 16)
            generateClient(program, version, clientName, programHex, versionNumber, procedures)
            generateService(program, version, serviceName, programHex, versionNumber, procedures)
        }
    }

    private func signatureArguments(_ info: ProcedureInfo) -> [(name: String, type: String)] {
        if info.arguments.count == 1 { return [("argument", info.arguments[0].swiftType)] }
        return info.arguments.enumerated().map { ("argument\($0.offset + 1)", $0.element.swiftType) }
    }

    /// A procedure's argument or result type as the `.x` file spells it.
    private func spell(_ declaration: Declaration) -> String {
        switch declaration {
        case .void: return "void"
        case .string(maximum: nil): return "string"
        default: return describe(declaration, name: "").trimmingSpaces()
        }
    }

    private func doc(_ info: ProcedureInfo) -> String {
        let args = info.procedure.arguments.isEmpty ? "void" : info.procedure.arguments.map(spell).joined(separator: ", ")
        let result = spell(info.procedure.result)
        return "`\(result) \(info.procedure.name)(\(args)) = \(info.number)`"
    }

    mutating func generateClient(_ program: Program, _ version: ProgramVersion, _ name: String, _ programHex: String, _ versionNumber: Int64, _ procedures: [ProcedureInfo]) {
        line()
        line("/// A typed client for program `\(program.name)` (\(programHex)) version `\(version.name)` (\(versionNumber)).")
        line("///")
        line("/// ```swift")
        line("/// let client = try \(name)(host: \"127.0.0.1\", port: 2049)")
        line("/// defer { Task { await client.close() } }")
        if let first = procedures.first(where: { $0.number != 0 }) ?? procedures.first {
            line("/// let result = try await client.\(first.method)(\(first.arguments.isEmpty ? "" : "…"))")
        }
        line("/// ```")
        line("\(access)struct \(name): Sendable {")
        line("    /// `\(program.name)`")
        line("    \(access)static let program: UInt32 = \(programHex)")
        line("    /// `\(version.name)`")
        line("    \(access)static let version: UInt32 = \(versionNumber)")
        line()
        line("    /// The underlying connection-managing client.")
        line("    \(access)let rpcClient: RPCClient")
        line()
        line("    /// Wraps a client already set up for this program and version.")
        line("    \(access)init(_ rpcClient: RPCClient) {")
        line("        self.rpcClient = rpcClient")
        line("    }")
        line()
        line("    /// A client for `host:port` (no portmapper lookup).")
        line("    \(access)init(")
        line("        transport: RPCTransport = .tcp,")
        line("        host: String,")
        line("        port: Int,")
        line("        authenticator: any RPCClientAuthenticator = AuthNoneClient(),")
        line("        configuration: RPCClient.Configuration = RPCClient.Configuration()")
        line("    ) throws {")
        line("        self.rpcClient = try RPCClient(")
        line("            transport: transport, host: host, port: port, program: Self.program, version: Self.version,")
        line("            authenticator: authenticator, configuration: configuration")
        line("        )")
        line("    }")
        line()
        line("    /// Closes the connection.")
        line("    \(access)func close() async {")
        line("        await rpcClient.close()")
        line("    }")
        for info in procedures {
            let params = signatureArguments(info).map { "_ \($0.name): \($0.type), " }.joined()
            line()
            line("    /// \(doc(info))")
            if info.isVoidResult {
                line("    \(access)func \(info.method)(\(params)timeout: TimeAmount? = nil) async throws {")
            } else {
                line("    \(access)func \(info.method)(\(params)timeout: TimeAmount? = nil) async throws -> \(info.result.swiftType) {")
            }
            if info.arguments.isEmpty {
                line("        let arguments = ByteBuffer()")
            } else {
                line("        var arguments = ByteBuffer()")
                for (arg, codec) in zip(signatureArguments(info), info.arguments) {
                    line("        \(codec.encode(arg.name, "arguments"))")
                }
            }
            line("        \(info.isVoidResult ? "let" : "var") results = try await rpcClient.call(procedure: \(info.number), arguments: arguments, timeout: timeout)")
            line("        do throws(XDRError) {")
            if info.isVoidResult {
                line("            if results.readableBytes != 0 { throw XDRError.trailingBytes(count: results.readableBytes) }")
            } else {
                line("            let value = \(info.result.decode("results"))")
                line("            if results.readableBytes != 0 { throw XDRError.trailingBytes(count: results.readableBytes) }")
                line("            return value")
            }
            line("        } catch {")
            line("            throw RPCClientError.badResults(error)")
            line("        }")
            line("    }")
        }
        line("}")
    }

    mutating func generateService(_ program: Program, _ version: ProgramVersion, _ name: String, _ programHex: String, _ versionNumber: Int64, _ procedures: [ProcedureInfo]) {
        // NULL (procedure 0, void -> void) is answered by RPCProgram itself.
        let served = procedures.filter { !($0.number == 0 && $0.arguments.isEmpty && $0.isVoidResult) }
        line()
        line("/// The server side of program `\(program.name)` (\(programHex)) version `\(version.name)` (\(versionNumber)).")
        line("///")
        line("/// Conform a type, then serve it:")
        line("/// ```swift")
        line("/// let server = RPCServer(programs: [MyImplementation().rpcProgram()])")
        line("/// ```")
        line("\(access)protocol \(name): Sendable {")
        for info in served {
            let params = signatureArguments(info).map { "_ \($0.name): \($0.type), " }.joined()
            line("    /// \(doc(info))")
            if info.isVoidResult {
                line("    func \(info.method)(\(params)request: RPCRequest) async throws")
            } else {
                line("    func \(info.method)(\(params)request: RPCRequest) async throws -> \(info.result.swiftType)")
            }
        }
        line("}")
        line()
        line("extension \(name) {")
        line("    /// `\(program.name)`")
        line("    \(access)static var program: UInt32 { \(programHex) }")
        line("    /// `\(version.name)`")
        line("    \(access)static var version: UInt32 { \(versionNumber) }")
        line()
        line("    /// This implementation as a program version for `RPCServer`. Arguments that do not")
        line("    /// decode exactly (a declared bound exceeded, truncation, trailing bytes) are")
        line("    /// answered with GARBAGE_ARGS before the method runs.")
        line("    \(access)func rpcProgram(policy: any RPCAuthorizationPolicy = AllowAnyFlavor()) -> RPCProgram {")
        line("        var program = RPCProgram(number: \(programHex), version: \(versionNumber), policy: policy)")
        for info in served {
            let args = signatureArguments(info)
            line("        program.setProcedure(\(info.number), .async { request in")
            if info.arguments.isEmpty {
                line("            if request.arguments.readableBytes != 0 { throw XDRError.trailingBytes(count: request.arguments.readableBytes) }")
            } else {
                line("            var buffer = request.arguments")
                for (arg, codec) in zip(args, info.arguments) {
                    line("            let \(arg.name) = \(codec.decode("buffer"))")
                }
                line("            if buffer.readableBytes != 0 { throw XDRError.trailingBytes(count: buffer.readableBytes) }")
            }
            let call = "self.\(info.method)(\(args.map { "\($0.name), " }.joined())request: request)"
            if info.isVoidResult {
                line("            try await \(call)")
                line("            return XDRVoid()")
            } else if info.result.isCodable {
                line("            return try await \(call)")
            } else {
                // Strings, byte arrays and arrays carry their bound in the codec, not in a
                // type, so they are encoded here.
                line("            let result = try await \(call)")
                line("            var encoded = ByteBuffer()")
                line("            \(info.result.encode("result", "encoded"))")
                line("            return PreencodedResults(bytes: encoded)")
            }
            line("        })")
        }
        line("        return program")
        line("    }")
        line("}")
    }

    mutating func generatePreencoded() {
        line()
        line("/// Results already in XDR form, handed to the server to send.")
        line("private struct PreencodedResults: XDREncodable {")
        line("    var bytes: ByteBuffer")
        line("    func encode(into buffer: inout ByteBuffer) {")
        line("        buffer.writeImmutableBuffer(bytes)")
        line("    }")
        line("}")
    }
}
