// The SECURE_ECHO interface. Its types (EchoReply, EchoText), the typed client EchoV1Client
// and the EchoV1Service protocol are generated from echo.x at build time by XDRGenPlugin;
// SwiftPM needs at least one Swift file in the target to see it as a Swift module.

/// The port the examples use unless told otherwise (TCP and UDP).
public let echoDefaultPort = 20301
