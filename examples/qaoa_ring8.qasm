// QAOA p = 2 for MaxCut on an 8-node ring, with a user-defined cost gate.
OPENQASM 2.0;
include "qelib1.inc";
gate cost(gamma) a, b { cx a, b; rz(2*gamma) b; cx a, b; }
qreg q[8];
h q;
cost(0.4) q[0], q[1]; cost(0.4) q[1], q[2]; cost(0.4) q[2], q[3]; cost(0.4) q[3], q[4];
cost(0.4) q[4], q[5]; cost(0.4) q[5], q[6]; cost(0.4) q[6], q[7]; cost(0.4) q[7], q[0];
rx(2*0.3) q;
cost(0.7) q[0], q[1]; cost(0.7) q[1], q[2]; cost(0.7) q[2], q[3]; cost(0.7) q[3], q[4];
cost(0.7) q[4], q[5]; cost(0.7) q[5], q[6]; cost(0.7) q[6], q[7]; cost(0.7) q[7], q[0];
rx(2*0.15) q;
