// 12-qubit GHZ state over two registers: (|0...0> + |1...1>) / sqrt(2)
OPENQASM 2.0;
include "qelib1.inc";
qreg a[6];
qreg b[6];
h a[0];
cx a[0], a[1];
cx a[1], a[2];
cx a[2], a[3];
cx a[3], a[4];
cx a[4], a[5];
cx a[5], b[0];
cx b[0], b[1];
cx b[1], b[2];
cx b[2], b[3];
cx b[3], b[4];
cx b[4], b[5];
