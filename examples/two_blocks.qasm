// Two 4-qubit blocks that share qubit 3: block A entangles q[0..3], then block B entangles q[3..6].
// One wire cut on q[3] splits it into two 4-qubit fragments: quargo run ... --max-qubits 4
OPENQASM 2.0;
include "qelib1.inc";
qreg q[7];
ry(0.3) q[0]; ry(0.5) q[1]; ry(0.7) q[2]; ry(0.9) q[3];
cx q[0], q[1]; cx q[1], q[2]; cx q[2], q[3];
rz(0.4) q[0]; rz(0.6) q[1]; rz(0.8) q[2]; rz(1.0) q[3];
cx q[0], q[1]; cx q[1], q[2]; cx q[2], q[3];
rx(0.2) q[4]; rx(0.4) q[5]; rx(0.6) q[6];
cz q[3], q[4]; cx q[4], q[5]; cx q[5], q[6];
ry(1.1) q[3]; ry(1.3) q[4]; ry(1.5) q[5]; ry(1.7) q[6];
cx q[3], q[4]; cx q[4], q[5]; cx q[5], q[6];
