"""Data-parallel training of the MLP 784-256-128-10 on MNIST over MPI:

    mpirun -n 2 python examples/distributed_mnist.py

Every rank runs this same program: nnfast.distributed.init() joins the world, fit gives each rank
its share of every global batch of 128 and averages the gradients before each step; rank 0 alone
prints and saves. Run without mpirun (or without mpi4py) it trains as one process."""
import nnfast as nf
from nnfast import nn
from _common import load, parse_args

args = parse_args(__doc__, epochs=5)
nf.distributed.init()
(x_train, y_train), (x_test, y_test) = load(quick=args.quick)
model = nn.Sequential(nn.Dense(256, activation="relu", input_shape=(784,)),
                      nn.Dense(128, activation="relu"), nn.Dense(10))
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x_train, y_train, epochs=args.epochs, batch_size=128, validation_split=0.1, verbose=2)
scores = model.evaluate(x_test, y_test)   # every rank evaluates its share; all get the totals
if nf.distributed.is_root():
    print(f"{nf.distributed.world_size()} rank(s): test accuracy {scores['accuracy']:.4f}")
