// The C TESTECHO service's interface (a copy of Tests/CPeers/echo.x): TestechoV1Client and
// the TestechoV1Service protocol are generated from testecho.x at build time by XDRGenPlugin;
// SwiftPM needs at least one Swift file in the target to see it as a Swift module.
