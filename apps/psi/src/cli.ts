console.log("psi");
